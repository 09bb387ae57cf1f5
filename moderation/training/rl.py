"""Step 4 of the loop: RL fine-tuning of the policy against the reward model.

For each text in a batch, sample G label sets from the policy pi_theta (independent Bernoullis), score
them with the reward model, and normalise within the group:

    A_g = (r_g - mean(r)) / (std(r) + eps)

then take PPO-style clipped steps (samples are reused for `ppo_epochs` updates):

    ratio = exp(log pi_theta(y|x) - log pi_old(y|x))
    L = -mean(min(ratio * A, clip(ratio, 1 - eps_clip, 1 + eps_clip) * A)) + beta * KL(pi_theta || pi_ref)

The KL to the reference (supervised) policy is exact for independent Bernoullis:
    KL = sum_c p log(p/q) + (1-p) log((1-p)/(1-q)).
With `leash_texts` (texts of the sources the policy was trained on, never the reviewed platform's), every
update also adds `leash * KL(pi_theta || pi_ref)` on a batch of them: the pool's KL only holds the policy on
the reviewed platform's texts, and RL's shifts leaked to every other source (the adaptation benchmark).

Everything that does not change during RL is computed once: the reference policy's logits and the
reward model's text embeddings. Only the policy is run per step, so RL costs about as much as
supervised training on the same texts.

Reward hacking guard: every `eval_every` steps the greedy policy is scored on held-out labelled texts by
the reviewer utility (the taxonomy's costs) and by the reward model. If the reward model's score rises
while the held-out utility falls for `hack_patience` evaluations in a row, training stops and the
best-utility policy is kept.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from moderation.errors import ConfigError, check_config
from moderation.taxonomy import Taxonomy
from moderation.training.evaluate import utility_at
from moderation.training.policy import PolicyModel, bernoulli_kl, entropy, label_set_log_prob, lora_optimizer, set_seed
from moderation.training.reward import RewardModel


@dataclass
class RLConfig:
    steps: int = 200
    batch_texts: int = 16
    group_size: int = 8  # G samples per text
    ppo_epochs: int = 2
    clip: float = 0.2
    kl_beta: float = 0.05
    lr: float = 1e-4  # LoRA; 3e-4 drove the KL past 7 nats within 50 steps
    sample_temperature: float = 1.0
    eval_every: int = 25
    hack_patience: int = 2
    grad_clip: float = 1.0
    max_length: int = 128  # tokens per text in the policy-gradient steps (held-out evaluation uses full windows)
    leash: float = 1.0  # weight of the KL to the reference on `leash_texts` (when given)
    seed: int = 0

    def __post_init__(self):
        check_config(self, positive=("steps", "batch_texts", "ppo_epochs", "clip", "lr", "eval_every", "hack_patience", "max_length"))
        if self.group_size < 2 or self.kl_beta < 0:
            raise ConfigError(f"group_size must be >= 2 and kl_beta >= 0, got {self.group_size} and {self.kl_beta}")


@dataclass
class RLHistory:
    rows: list[dict] = field(default_factory=list)
    stopped_for_reward_hacking: bool = False
    best_step: int = 0


def _group_advantages(r: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B, G) rewards -> (B, G) advantages normalised within each text's group."""
    return (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + eps)


def ppo_loss(z: torch.Tensor, y: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, ref_logits: torch.Tensor,
             clip: float, kl_beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The RL objective (module docstring): clipped policy gradient plus beta times the exact KL to the
    reference. Returns (loss, pg, kl) so callers can log the parts."""
    ratio = torch.exp(label_set_log_prob(z, y) - logp_old)
    pg = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
    kl = bernoulli_kl(z, ref_logits).mean()
    return pg + kl_beta * kl, pg, kl


class RewardHackingGuard:
    """Says stop when the reward model's held-out score rose while held-out utility fell, `patience`
    evaluations in a row: the policy is then pleasing the reward model, not the reviewers."""

    def __init__(self, patience: int, first: dict):
        self.patience, self.last, self.bad = patience, first, 0

    def update(self, ev: dict) -> bool:
        hacking = ev["heldout_rm_reward"] > self.last["heldout_rm_reward"] and ev["heldout_utility"] < self.last["heldout_utility"]
        self.bad = self.bad + 1 if hacking else 0
        self.last = ev
        return self.bad >= self.patience


def train_rl(policy: PolicyModel, reward: RewardModel, pool_texts: list[str], pool_embeddings: np.ndarray,
             taxonomy: Taxonomy, heldout_texts: list[str], heldout_gold: np.ndarray, heldout_mask: np.ndarray,
             heldout_embeddings: np.ndarray, thresholds: np.ndarray, cfg: RLConfig = RLConfig(),
             out_dir: str | Path | None = None, log=print, leash_texts: list[str] | None = None) -> RLHistory:
    """Fine-tune `policy` in place (LoRA adapters are enabled if it has none). Returns the history."""
    from tqdm import tqdm

    set_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    params, opt = lora_optimizer(policy, cfg.lr)
    policy.eval()  # dropout off: log-probs must be the policy's, not a dropout sample's
    reward.eval()
    for p in reward.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        ref_logits = torch.cat([policy.train_logits(pool_texts[i : i + 64], cfg.max_length)
                                for i in range(0, len(pool_texts), 64)]) if pool_texts else torch.zeros((0, len(taxonomy)))
        # the leash: a fixed sample of other sources' texts, one batch per step, with the start's logits
        leash = []
        if leash_texts:
            pick = rng.choice(len(leash_texts), min(len(leash_texts), cfg.steps * cfg.batch_texts), replace=False)
            leash = [leash_texts[i] for i in pick]
        leash_ref = torch.cat([policy.train_logits(leash[i : i + 64], cfg.max_length)
                               for i in range(0, len(leash), 64)]) if leash else None
    h_pool = torch.from_numpy(pool_embeddings)
    h_held = torch.from_numpy(heldout_embeddings)
    def evaluate(step: int) -> dict:
        with torch.no_grad():
            p = torch.sigmoid(policy.text_logits(heldout_texts, batch_size=64, max_windows=1)).numpy()
            greedy = torch.from_numpy((p >= thresholds).astype(np.float32))
            rm = reward(h_held, greedy).mean().item()
        return {"step": step, "heldout_utility": utility_at(p, heldout_gold, heldout_mask, thresholds, taxonomy),
                "heldout_rm_reward": rm}

    history = RLHistory()
    best = evaluate(0)
    best_state = copy.deepcopy({k: v.detach().clone() for k, v in policy.state_dict().items()})
    history.rows.append({**best, "reward": None, "kl": 0.0, "entropy": None})
    log(f"RL start: held-out utility {best['heldout_utility']:.4f}, RM reward {best['heldout_rm_reward']:.4f}")
    guard = RewardHackingGuard(cfg.hack_patience, best)
    started = time.time()
    bar = tqdm(range(1, cfg.steps + 1), desc="rl", unit="step")
    for step in bar:
        batch = rng.choice(len(pool_texts), size=min(cfg.batch_texts, len(pool_texts)), replace=False)
        texts = [pool_texts[i] for i in batch]
        b = torch.from_numpy(batch)
        with torch.no_grad():
            z_old = policy.train_logits(texts, cfg.max_length)
            p_sample = torch.sigmoid(z_old / cfg.sample_temperature)
            y = torch.bernoulli(p_sample.unsqueeze(1).expand(-1, cfg.group_size, -1))  # (B, G, C)
            r = reward(h_pool[b], y)  # (B, G)
            adv = _group_advantages(r)
            logp_old = label_set_log_prob(z_old, y)
        if leash:
            at = ((step - 1) * cfg.batch_texts) % len(leash)
            lb = np.arange(at, at + cfg.batch_texts) % len(leash)
            leash_batch = [leash[i] for i in lb]
        for _ in range(cfg.ppo_epochs):
            z = policy.train_logits(texts, cfg.max_length)
            loss, pg, kl = ppo_loss(z, y, logp_old, adv, ref_logits[b], cfg.clip, cfg.kl_beta)
            if leash:
                leash_kl = bernoulli_kl(policy.train_logits(leash_batch, cfg.max_length), leash_ref[torch.from_numpy(lb)]).mean()
                loss = loss + cfg.leash * leash_kl
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
        row = {"step": step, "reward": r.mean().item(), "kl": kl.item(), "entropy": entropy(z.detach()).mean().item(),
               **({"leash_kl": leash_kl.item()} if leash else {})}
        bar.set_postfix(reward=f"{row['reward']:.3f}", kl=f"{row['kl']:.3f}")
        if step % cfg.eval_every == 0 or step == cfg.steps:
            ev = evaluate(step)
            row.update(ev)
            if ev["heldout_utility"] > best["heldout_utility"]:
                best = ev
                best_state = copy.deepcopy({k: v.detach().clone() for k, v in policy.state_dict().items()})
                history.best_step = step
            if guard.update(ev):
                history.stopped_for_reward_hacking = True
                history.rows.append(row)
                log(f"stopping at step {step}: reward-model score rose while held-out utility fell for {guard.bad} "
                    "evaluations in a row (reward hacking); keeping the best-utility policy")
                break
        history.rows.append(row)
    bar.close()
    policy.load_state_dict(best_state)
    log(f"RL done in {time.time() - started:.0f}s: best held-out utility {best['heldout_utility']:.4f} at step "
        f"{history.best_step}")
    if out_dir is not None:
        out = Path(out_dir)
        policy.save(out)
        (out / "rl_history.json").write_text(json.dumps({"config": asdict(cfg), **asdict(history)}, indent=2))
        from moderation.training.plots import plot_rl_history

        plot_rl_history(history, out / "rl_curves.png")
    return history
