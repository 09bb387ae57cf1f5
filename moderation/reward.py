"""Step 3 of the loop: a reward model r(text, label set) learned from reviewers' preferences.

    loss = -log sigmoid(r(x, y_chosen) - r(x, y_rejected))          (Bradley-Terry)

The text is encoded once; any number of label sets are scored against that encoding:

    r(x, y) = y . s(x) + g([h(x), y])

h(x) is the frozen encoder's mean-pooled embedding (the supervised policy's encoder: it already knows
what the text is about), s(x) a per-category linear score, g a small MLP for interactions between
categories. The linear part alone can represent reviewer utility exactly: for a fixed gold set y*,
U(y, y*) = const(x) + sum_c y_c (cost_fn_c y*_c - cost_fp_c (1 - y*_c)), linear in y.

Because the encoder is frozen, embeddings are computed once per text and training the heads takes
seconds on a CPU — what makes a review-train-review loop practical on two cores.
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


@dataclass
class RewardConfig:
    embed_dim: int
    n_categories: int
    hidden: int = 64
    epochs: int = 60
    lr: float = 3e-3
    weight_decay: float = 1e-3
    batch_size: int = 256
    seed: int = 0


class RewardModel(nn.Module):
    def __init__(self, cfg: RewardConfig):
        super().__init__()
        self.cfg = cfg
        self.linear = nn.Linear(cfg.embed_dim, cfg.n_categories)  # s(x)
        self.mlp = nn.Sequential(nn.Linear(cfg.embed_dim + cfg.n_categories, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, 1))

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """h: (N, D) text embeddings; y: (N, C) or (N, K, C) label sets -> rewards (N,) or (N, K)."""
        if y.dim() == 3:
            hk = h.unsqueeze(1).expand(-1, y.shape[1], -1)
            return (y * self.linear(h).unsqueeze(1)).sum(-1) + self.mlp(torch.cat([hk, y], -1)).squeeze(-1)
        return (y * self.linear(h)).sum(-1) + self.mlp(torch.cat([h, y], -1)).squeeze(-1)

    def save(self, out: str | Path) -> None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(out / "reward.safetensors"))
        (out / "reward_config.json").write_text(json.dumps(asdict(self.cfg), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "RewardModel":
        path = Path(path)
        model = cls(RewardConfig(**json.loads((path / "reward_config.json").read_text())))
        model.load_state_dict(load_file(str(path / "reward.safetensors")))
        return model


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    return -F.logsigmoid(r_chosen - r_rejected).mean()


@torch.no_grad()
def embed_texts(policy, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Mean-pooled embeddings from the policy's encoder (first window), one pass per text."""
    from moderation.windows import length_sorted_batches

    policy.eval()
    w = policy.windows(texts, max_windows=1)
    out = np.zeros((len(texts), policy.bert().config.hidden_size), dtype=np.float32)
    for index in length_sorted_batches(w, batch_size):
        ids, mask = policy.batch_tensors(w, index)
        hidden = policy.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        out[w.owner[index]] = ((hidden * m).sum(1) / m.sum(1).clamp(min=1.0)).numpy()
    return out


def pairs_to_arrays(pairs: list[PreferencePair], text_index: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.array([text_index[p.text] for p in pairs], dtype=np.int64)
    chosen = np.array([p.chosen for p in pairs], dtype=np.float32)
    rejected = np.array([p.rejected for p in pairs], dtype=np.float32)
    return idx, chosen, rejected


def train_reward(embeddings: np.ndarray, idx: np.ndarray, chosen: np.ndarray, rejected: np.ndarray,
                 cfg: RewardConfig, log=print) -> RewardModel:
    torch.manual_seed(cfg.seed)
    model = RewardModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    h = torch.from_numpy(embeddings)
    ii, yc, yr = torch.from_numpy(idx), torch.from_numpy(chosen), torch.from_numpy(rejected)
    g = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(ii), generator=g)
        total = 0.0
        for s in range(0, len(perm), cfg.batch_size):
            b = perm[s : s + cfg.batch_size]
            loss = bradley_terry_loss(model(h[ii[b]], yc[b]), model(h[ii[b]], yr[b]))
            opt.zero_grad()
            loss.backward()
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
