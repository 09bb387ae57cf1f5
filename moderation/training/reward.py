"""Step 3 of the loop: a reward model r(text, label set) learned from reviewers' preferences.

    loss = -log sigmoid(r(x, y_chosen) - r(x, y_rejected))          (Bradley-Terry)

The reward has the shape of the taxonomy's reviewer utility, with the reviewer's unknown verdict
replaced by the model's belief q_c(x) that a reviewer would mark category c:

    E[U(y, y*)] = const(x) + sum_c y_c * w_c(x),   w_c(x) = (cost_fn_c + cost_fp_c) * q_c(x) - cost_fp_c
    r(x, y)     = s * sum_c y_c * w_c(x),          q_c(x) = sigmoid(a_c . h(x) + b_c)

h(x) = [z(x); m(x)]: the supervised policy's own raw logits z (its first window) next to its encoder's
mean-pooled embedding m, computed once per text; any number of label sets are then scored for free.
With z inside h, the beliefs can start *exactly* at the policy's calibrated scores (a = [diag(1/T) | 0],
b = the calibration bias) whatever pooling the policy uses, and learn from m what the policy missed. Why this shape and not a free MLP over (h, y):
a free reward model, trained only on the K proposals reviewers ranked, extrapolated wildly to label sets
nobody ranked (its best set switched on 3.7 categories per item where reviewers chose 1.8), and RL found
and exploited exactly that (reward up 6x, held-out utility down). This one is bounded per category and its
best set is "flag c when q_c(x) > cost_fp/(cost_fp+cost_fn)", the same rule the policy is judged by.
The beliefs start at the supervised policy's own calibrated head and are pulled towards it by `anchor`,
so a few reviews adjust the policy's beliefs rather than replace them; `s` (learned) sets how sharply
reviewers' choices follow utility differences.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from moderation.feedback import PreferencePair
from moderation.package import atomic_replace, atomic_write_text


@dataclass
class RewardConfig:
    embed_dim: int
    n_categories: int
    cost_fn: tuple[float, ...] = ()
    cost_fp: tuple[float, ...] = ()
    epochs: int = 60
    lr: float = 3e-3
    anchor: float = 1e-2  # L2 pull of the belief head towards its starting point (the policy's head)
    batch_size: int = 256
    seed: int = 0


class RewardModel(nn.Module):
    def __init__(self, cfg: RewardConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.n_categories
        self.belief = nn.Linear(cfg.embed_dim, c)  # a_c . h + b_c: logit of "a reviewer marks c"
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.register_buffer("cost_fn", torch.tensor(cfg.cost_fn or (1.0,) * c, dtype=torch.float32))
        self.register_buffer("cost_fp", torch.tensor(cfg.cost_fp or (1.0,) * c, dtype=torch.float32))

    def weights(self, h: torch.Tensor) -> torch.Tensor:
        """w_c(x): the expected utility gained by flagging c, (N, C)."""
        q = torch.sigmoid(self.belief(h))
        return (self.cost_fn + self.cost_fp) * q - self.cost_fp

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """h: (N, D) text embeddings; y: (N, C) or (N, K, C) label sets -> rewards (N,) or (N, K)."""
        w = self.log_scale.exp() * self.weights(h)
        return (y * (w.unsqueeze(1) if y.dim() == 3 else w)).sum(-1)

    def init_from_policy(self, policy) -> None:
        """Start the beliefs at the policy's calibrated scores: h's first C entries are its raw logits."""
        c = self.cfg.n_categories
        with torch.no_grad():
            self.belief.weight.zero_()
            self.belief.weight[:, :c] = torch.diag(1.0 / policy.log_temperature.exp())
            self.belief.bias.copy_(policy.calibration_bias)

    def save(self, out: str | Path) -> None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / "reward.safetensors.tmp"
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(tmp))
        atomic_replace(tmp, out / "reward.safetensors")
        atomic_write_text(out / "reward_config.json", json.dumps(asdict(self.cfg), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "RewardModel":
        path = Path(path)
        raw = json.loads((path / "reward_config.json").read_text())
        model = cls(RewardConfig(**{**raw, "cost_fn": tuple(raw.get("cost_fn", ())), "cost_fp": tuple(raw.get("cost_fp", ()))}))
        model.load_state_dict(load_file(str(path / "reward.safetensors")))
        return model


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    return -F.logsigmoid(r_chosen - r_rejected).mean()


@torch.no_grad()
@torch.no_grad()
def embed_texts(policy, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """h(x) = [raw logits z (C); mean-pooled encoder state (D)] from the policy's first window, one pass per text."""
    from moderation.training.policy import masked_mean
    from moderation.windows import length_sorted_batches

    policy.eval()
    w = policy.windows(texts, max_windows=1)
    c = len(policy.categories)
    out = np.zeros((len(texts), c + policy.bert().config.hidden_size), dtype=np.float32)
    for index in length_sorted_batches(w, batch_size):
        ids, mask = policy.batch_tensors(w, index)
        hidden = policy.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        out[w.owner[index], :c] = policy.head_logits(hidden, mask).numpy()
        out[w.owner[index], c:] = masked_mean(hidden, mask).numpy()
    return out


def pairs_to_arrays(pairs: list[PreferencePair], text_index: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(text index, chosen, rejected) arrays; categories the reviewer did not judge are zeroed in both sets.

    The reward is linear in the label set, so r(chosen) - r(rejected) then sums over judged categories
    only: an unjudged category gets no gradient and no say in the pair, whatever either set holds."""
    idx = np.array([text_index[p.text] for p in pairs], dtype=np.int64)
    n = len(pairs[0].chosen) if pairs else 0
    judged = np.array([p.judged if p.judged is not None else (1,) * n for p in pairs], dtype=np.float32).reshape(len(pairs), n)
    chosen = np.array([p.chosen for p in pairs], dtype=np.float32).reshape(len(pairs), n) * judged
    rejected = np.array([p.rejected for p in pairs], dtype=np.float32).reshape(len(pairs), n) * judged
    return idx, chosen, rejected


def train_reward(embeddings: np.ndarray, idx: np.ndarray, chosen: np.ndarray, rejected: np.ndarray,
                 cfg: RewardConfig, init_policy=None, log=print) -> RewardModel:
    torch.manual_seed(cfg.seed)
    model = RewardModel(cfg)
    if init_policy is not None:
        model.init_from_policy(init_policy)
    start = [p.detach().clone() for p in model.belief.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    h = torch.from_numpy(embeddings)
    ii, yc, yr = torch.from_numpy(idx), torch.from_numpy(chosen), torch.from_numpy(rejected)
    g = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(ii), generator=g)
        total = 0.0
        for s in range(0, len(perm), cfg.batch_size):
            b = perm[s : s + cfg.batch_size]
            loss = bradley_terry_loss(model(h[ii[b]], yc[b]), model(h[ii[b]], yr[b]))
            anchor = sum(((p - p0) ** 2).sum() for p, p0 in zip(model.belief.parameters(), start))
            opt.zero_grad()
            (loss + cfg.anchor * anchor).backward()
            opt.step()
            total += loss.item() * len(b)
        if epoch == cfg.epochs - 1 or epoch % 20 == 0:
            log(f"reward epoch {epoch + 1}/{cfg.epochs}: Bradley-Terry loss {total / max(1, len(perm)):.4f}")
    return model.eval()


@torch.no_grad()
def pairwise_accuracy(model: RewardModel, embeddings: np.ndarray, idx: np.ndarray, chosen: np.ndarray,
                      rejected: np.ndarray) -> float:
    h = torch.from_numpy(embeddings)[torch.from_numpy(idx)]
    rc, rr = model(h, torch.from_numpy(chosen)), model(h, torch.from_numpy(rejected))
    return float(((rc > rr).float() + 0.5 * (rc == rr).float()).mean()) if len(idx) else float("nan")
