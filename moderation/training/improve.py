"""Steps 3 and 4 as one round of improvement from reviewer feedback, shared by `moderate loop` and
benchmarks/rlhf_lift.py so that the benchmark measures exactly what the loop ships.

Given the current supervised policy and a batch of judgments:

  split_items        whole items go to train or held-out (never one item's pairs on both sides); the
                     held-out items measure the reward model and pick the best RL / SFT step
  fit_reward         Bradley-Terry reward model on the train items' preference pairs, reported next to
                     two baselines (Hamming distance to the greedy proposal, the policy's log-probability)
  sft_on_corrections the obvious alternative to RL: fine-tune (LoRA) on the reviewers' corrected label sets
  rl_on_feedback     policy gradient against the reward model on reviewed and unlabelled texts

Decisions are scored with the taxonomy's reviewer utility at the cost-optimal thresholds
(`Taxonomy.cost_optimal_thresholds`), so models are compared on their decisions, not on tuned thresholds.
Every consensus carries a `judged` mask (a category counts only where some reviewer judged it); pairs,
SFT targets, utilities and step selection all respect it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from moderation.errors import ConfigError, ModerationError, check_config
from moderation.feedback import Judgment, preference_pairs
from moderation.taxonomy import Taxonomy
from moderation.training.data import stable_unit
from moderation.training.evaluate import cost_optimal_utility
from moderation.training.policy import PolicyModel, label_set_log_prob, lora_optimizer, set_seed
from moderation.training.reward import RewardConfig, RewardModel, embed_texts, pairs_to_arrays, pairwise_accuracy, train_reward
from moderation.training.rl import RLConfig, RLHistory, train_rl


SFT_SELECT = ("utility", "log_loss")


@dataclass
class ImproveConfig:
    holdout: float = 0.2  # share of reviewed items held out
    reward_epochs: int = 60
    reward_anchor: float = 1e-2
    sft_epochs: int = 3
    sft_lr: float = 3e-4
    sft_batch: int = 16
    # How SFT picks its epoch on the held-out reviewed items: "log_loss" (mean BCE on the judged categories,
    # a proper score) or "utility" (of the cost-optimal decisions). On 60 held-out items of one category,
    # utility moves in steps of one item and ties keep the start; on the adaptation benchmark log-loss picked
    # better epochs (OLID: 0.66 of the gap closed against 0.47, docs/loop.md)
    sft_select: str = "log_loss"
    rl: RLConfig = field(default_factory=RLConfig)
    seed: int = 0

    def __post_init__(self):
        check_config(self, positive=("reward_epochs", "sft_epochs", "sft_lr", "sft_batch"), unit=("holdout",))
        if self.sft_select not in SFT_SELECT:
            raise ConfigError(f"sft_select must be one of {SFT_SELECT}, got {self.sft_select!r}")


def usable_judgments(judgments: list[Judgment], held_back: set[str] | frozenset = frozenset()) -> list[Judgment]:
    """The judgments a model may learn from: none of an item in `held_back` (the test and gate splits,
    `data.held_back_ids`), whichever way it reached the store."""
    return [j for j in judgments if j.item_id not in held_back]


def split_items(judgments: list[Judgment], holdout: float, seed: int) -> tuple[list[Judgment], list[Judgment]]:
    done = [j for j in judgments if j.status == "done"]
    held = [j for j in done if stable_unit(j.item_id, seed + 1) < holdout]
    return [j for j in done if stable_unit(j.item_id, seed + 1) >= holdout], held


def consensus(judgments: list[Judgment], n_categories: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts, gold, judged): per item, the majority of the reviewers who judged each category (ties count as
    positive); `judged` is 0 where no reviewer judged the category (its gold is then 0 and means nothing)."""
    by_item: dict[str, tuple[str, list, list]] = {}
    for j in judgments:
        if j.status == "done" and j.gold is not None:
            _, golds, masks = by_item.setdefault(j.item_id, (j.text, [], []))
            golds.append(j.gold)
            masks.append(j.judged_mask(n_categories))
    texts = [t for t, _, _ in by_item.values()]
    gold, judged = np.zeros((len(texts), n_categories), np.float32), np.zeros((len(texts), n_categories), np.float32)
    for i, (_, golds, masks) in enumerate(by_item.values()):
        g, m = np.asarray(golds, dtype=np.float32), np.asarray(masks, dtype=np.float32)
        votes, n = (g * m).sum(0), m.sum(0)
        judged[i] = n > 0
        gold[i] = (n > 0) & (votes >= 0.5 * n)
    return texts, gold, judged


def heldout_score(policy: PolicyModel, texts: list[str], gold: np.ndarray, judged: np.ndarray, taxonomy: Taxonomy,
                  select: str = "utility") -> float:
    """What SFT's epoch selection maximises on the held-out reviewed items (`ImproveConfig.sft_select`)."""
    if select == "utility":
        return heldout_utility(policy, texts, gold, judged, taxonomy)
    return -heldout_utility_and_log_loss(policy, texts, gold, judged, taxonomy)[1]


def heldout_utility_and_log_loss(policy: PolicyModel, texts: list[str], gold: np.ndarray, judged: np.ndarray,
                                 taxonomy: Taxonomy) -> tuple[float, float]:
    """Held-out utility (as `heldout_utility`) and mean BCE on the judged categories, from one forward pass."""
    if not texts:
        return float("nan"), float("nan")
    with torch.no_grad():
        z = policy.eval().text_logits(texts, max_windows=1)
    m = torch.from_numpy(np.asarray(judged, dtype=np.float32))
    bce = F.binary_cross_entropy_with_logits(z, torch.from_numpy(np.asarray(gold, dtype=np.float32)), reduction="none")
    return cost_optimal_utility(torch.sigmoid(z).numpy(), gold, judged, taxonomy), float((bce * m).sum() / m.sum().clamp(min=1))


def heldout_utility(policy: PolicyModel, texts: list[str], gold: np.ndarray, judged: np.ndarray, taxonomy: Taxonomy) -> float:
    """Mean reviewer utility of the policy's cost-optimal decisions on reviewed items, judged categories only."""
    if not texts:
        return float("nan")
    with torch.no_grad():
        p = torch.sigmoid(policy.eval().text_logits(texts, max_windows=1)).numpy()
    return cost_optimal_utility(p, gold, judged, taxonomy)


# ------------------------------------------------------------------ step 3: reward model


def fit_reward(policy: PolicyModel, train_js: list[Judgment], held_js: list[Judgment], taxonomy: Taxonomy, cfg: ImproveConfig,
               embeddings: dict[str, np.ndarray] | None = None, log=print) -> tuple[RewardModel, dict]:
    """Train the reward model on `train_js`' pairs; report pairwise accuracy on `held_js`' pairs.

    `embeddings` (text -> vector from `policy`'s encoder) may be passed in when already computed.
    """
    set_seed(cfg.seed)
    tr = [p for j in train_js for p in preference_pairs(j)]
    te = [p for j in held_js for p in preference_pairs(j)]
    if len(tr) < 10:
        raise ValueError(f"only {len(tr)} preference pairs to train on; collect more reviews first")
    texts = sorted({p.text for p in tr + te})
    index = {t: i for i, t in enumerate(texts)}
    if embeddings is not None and all(t in embeddings for t in texts):
        emb = np.stack([embeddings[t] for t in texts]) if texts else np.zeros((0, 1), np.float32)
    else:
        emb = embed_texts(policy, texts)
    rcfg = RewardConfig(embed_dim=emb.shape[1], n_categories=len(policy.categories), cost_fn=tuple(taxonomy.cost_fn.tolist()),
                        cost_fp=tuple(taxonomy.cost_fp.tolist()), epochs=cfg.reward_epochs, anchor=cfg.reward_anchor, seed=cfg.seed)
    model = train_reward(emb, *pairs_to_arrays(tr, index), rcfg, init_policy=policy, log=log)
    report = {"pairs_train": len(tr), "pairs_heldout": len(te), "items_train": len(train_js), "items_heldout": len(held_js)}
    report.update(baseline_accuracies(policy, model, emb, index, te))
    # The same reward model before any review shaped it (its beliefs are the policy's own scores): what the
    # reviews taught it is the distance from here, not from chance.
    start = RewardModel(rcfg)
    start.init_from_policy(policy)
    report["accuracy_reward_model_start"] = pairwise_accuracy(start.eval(), emb, *pairs_to_arrays(te, index)) if te else float("nan")
    log(f"reward model: held-out pairwise accuracy {report['accuracy_reward_model']:.3f} (untrained start "
        f"{report['accuracy_reward_model_start']:.3f}, Hamming to greedy "
        f"{report['accuracy_hamming_to_greedy']:.3f}, policy log-prob {report['accuracy_policy_log_prob']:.3f}; "
        f"{len(te)} held-out pairs)")
    return model, report


def baseline_accuracies(policy: PolicyModel, reward: RewardModel, emb: np.ndarray, index: dict[str, int], pairs) -> dict:
    """Pairwise accuracy of the reward model and of two reward-free baselines on the same pairs."""
    if not pairs:
        nan = float("nan")
        return {"accuracy_reward_model": nan, "accuracy_hamming_to_greedy": nan, "accuracy_policy_log_prob": nan}
    i, c, r = pairs_to_arrays(pairs, index)
    texts = sorted(index, key=index.get)
    with torch.no_grad():
        z = policy.eval().text_logits([texts[k] for k in i], max_windows=1)
    greedy = (torch.sigmoid(z).numpy() >= 0.5).astype(np.float32)
    ham_c, ham_r = np.abs(c - greedy).sum(1), np.abs(r - greedy).sum(1)
    lp_c = label_set_log_prob(z, torch.from_numpy(c)).numpy()
    lp_r = label_set_log_prob(z, torch.from_numpy(r)).numpy()
    return {"accuracy_reward_model": pairwise_accuracy(reward, emb, i, c, r),
            "accuracy_hamming_to_greedy": float(((ham_c < ham_r) + 0.5 * (ham_c == ham_r)).mean()),
            "accuracy_policy_log_prob": float(((lp_c > lp_r) + 0.5 * (lp_c == lp_r)).mean())}


# ------------------------------------------------------------------ the supervised alternative


@dataclass
class Replay:
    """Texts of the sources the policy was trained on, mixed into every fine-tuning batch (`ratio` per
    reviewed item), so that corrections about one platform's category redraw its boundary less everywhere
    else. Two kinds, both measured on the adaptation benchmark (benchmarks/adaptation.py, docs/loop.md):

      leash=True   the target is the starting policy's own probability on every category: BCE to it is the
                   per-category KL to the start plus a constant, summed over categories per text (RL's leash,
                   for SFT). It says "stay where you were on text like this", including on categories a
                   replayed source never labelled, and it is what `moderate loop` uses (three per correction).
                   A regulariser, not labels: nothing it produces is evaluated or stored as a judgment.
      leash=False  the texts' own labels (`targets`, `mask`): label replay, the benchmark's `sft_replay`. It
                   leaves every category a source did not label free, so 300 YouTube spam corrections still
                   raised `spam` on every other source; the leash closed more of the gap with fewer falls.
    """

    texts: list[str]
    targets: np.ndarray | None = None  # soft labels, taxonomy order (label replay only)
    mask: np.ndarray | None = None  # 1 where the source labelled the category (label replay only)
    ratio: float = 1.0  # replayed texts per reviewed item in each batch
    leash: bool = False

    def __post_init__(self):
        if not self.ratio > 0:
            raise ConfigError(f"Replay.ratio must be > 0, got {self.ratio}")
        if not self.leash and (self.targets is None or self.mask is None or len(self.targets) != len(self.texts)):
            raise ConfigError("label replay (leash=False) needs targets and mask, one row per text")


def sft_on_corrections(policy: PolicyModel, texts: list[str], gold: np.ndarray, judged: np.ndarray, held_texts: list[str],
                       held_gold: np.ndarray, held_judged: np.ndarray, taxonomy: Taxonomy, cfg: ImproveConfig, log=print,
                       replay: Replay | None = None) -> dict:
    """Fine-tune `policy` in place (LoRA) with BCE on reviewers' corrected label sets, masked to the
    categories they judged, plus, with `replay`, a loss on replayed texts in every batch (see Replay). The
    epoch with the best held-out score (`cfg.sft_select`) is kept, the starting point included.
    """
    from tqdm import tqdm

    set_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    start = copy.deepcopy(policy).eval() if replay is not None and replay.leash else None
    params, opt = lora_optimizer(policy, cfg.sft_lr)
    y = torch.from_numpy(np.asarray(gold, dtype=np.float32))
    m = torch.from_numpy(np.asarray(judged, dtype=np.float32))
    def held() -> dict:
        if cfg.sft_select == "utility":
            return {"heldout_utility": heldout_utility(policy, held_texts, held_gold, held_judged, taxonomy)}
        util, log_loss = heldout_utility_and_log_loss(policy, held_texts, held_gold, held_judged, taxonomy)
        return {"heldout_utility": util, "heldout_log_loss": log_loss}

    def score(h: dict) -> float:
        return h["heldout_utility"] if cfg.sft_select == "utility" else -h[f"heldout_{cfg.sft_select}"]

    first = held()
    best = score(first)
    best_state, best_epoch, history = _snapshot(policy), 0, [{"epoch": 0, **first}]
    for epoch in range(1, cfg.sft_epochs + 1):
        policy.train()
        order = rng.permutation(len(texts))
        total = 0.0
        for s in tqdm(range(0, len(order), cfg.sft_batch), desc=f"sft on corrections {epoch}/{cfg.sft_epochs}", unit="batch", leave=False):
            b = order[s : s + cfg.sft_batch]
            batch, yb, mb = [texts[i] for i in b], y[b], m[b]
            if replay is not None and replay.texts:
                r = rng.choice(len(replay.texts), min(len(replay.texts), max(1, int(round(replay.ratio * len(b))))), replace=False)
                replayed = [replay.texts[i] for i in r]
                batch += replayed
                if start is not None:
                    with torch.no_grad():
                        yb = torch.cat([yb, torch.sigmoid(start.train_logits(replayed))])
                    mb = torch.cat([mb, torch.ones((len(r), mb.shape[1]))])
                else:
                    yb = torch.cat([yb, torch.from_numpy(np.asarray(replay.targets[r], dtype=np.float32))])
                    mb = torch.cat([mb, torch.from_numpy(np.asarray(replay.mask[r], dtype=np.float32))])
            bce = F.binary_cross_entropy_with_logits(policy.train_logits(batch), yb, reduction="none")
            if start is None:
                loss = (bce * mb).sum() / mb.sum().clamp(min=1)
            else:
                # Corrections: mean BCE over their judged entries. Leash: per text, the KL to the start summed
                # over the categories (the RL leash's definition; BCE to soft targets is that KL plus a
                # constant), averaged over texts. Averaging the leash over categories instead left each one a
                # seventh of the weight, and 300 YouTube corrections then raised spam on every source
                # (+0.21 mean probability on the gate split, against +0.09 with label replay).
                n = len(b)
                loss = ((bce[:n] * mb[:n]).sum() / mb[:n].sum().clamp(min=1)
                        + (bce[n:] * mb[n:]).sum() / max(1, len(bce) - n))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            total += loss.item() * len(b)
        h = held()
        history.append({"epoch": epoch, "loss": total / max(1, len(texts)), **h})
        log(f"sft on corrections: epoch {epoch} loss {history[-1]['loss']:.4f}, held-out "
            + ", ".join(f"{k[8:]} {v:.4f}" for k, v in h.items()))
        if score(h) > best:
            best, best_state, best_epoch = score(h), _snapshot(policy), epoch
    policy.load_state_dict(best_state)
    policy.eval()
    return {"best_epoch": best_epoch, "best_heldout_utility": history[best_epoch]["heldout_utility"], "selected_on": cfg.sft_select,
            "history": history}


def recalibrate(policy: PolicyModel, validation: list, texts: list[str], gold: np.ndarray, judged: np.ndarray) -> dict:
    """Re-fit `policy`'s Platt calibration (in place) after fine-tuning, on labelled validation examples of
    the sources it was trained on plus the reviewed items (their judged categories only), as supervised
    training does after its last epoch. Fine-tuning on one platform's corrections moves a category's bias
    for every platform (300 YouTube spam reviews, half of them spam, raised `spam` everywhere); this puts
    each category's probabilities back on its labels without touching its ranking. Measured on the
    adaptation benchmark (`sft_replay_cal`): it cut the gate loss but cost utility on the reviewed platform,
    so the loop does not use it."""
    from moderation.training.data import Example
    from moderation.training.sft import calibrate

    reviewed = [Example(f"reviewed:{i}", t, "reviewed", {c: float(g) if k else None for c, g, k in zip(policy.categories, gold[i], judged[i])})
                for i, t in enumerate(texts)]
    return calibrate(policy, list(validation) + reviewed)


def _snapshot(policy: PolicyModel) -> dict:
    return copy.deepcopy({k: v.detach().clone() for k, v in policy.state_dict().items()})


# ------------------------------------------------------------------ step 4: RL


def rl_on_feedback(policy: PolicyModel, reward: RewardModel, embed: dict[str, np.ndarray], pool_texts: list[str],
                   held_texts: list[str], held_gold: np.ndarray, held_judged: np.ndarray, taxonomy: Taxonomy, cfg: ImproveConfig,
                   out_dir=None, log=print, leash_texts: list[str] | None = None) -> RLHistory:
    """RL (in place) against `reward`. `embed` maps every pool and held-out text to the reward model's
    encoder embedding (the encoder the reward model was trained with, not the policy being tuned); the
    held-out items pick the best step on the categories their reviewers judged. `leash_texts`: other
    sources' texts the policy is held on (rl.py)."""
    pool_emb = np.stack([embed[t] for t in pool_texts])
    held_emb = np.stack([embed[t] for t in held_texts]) if held_texts else np.zeros((0, pool_emb.shape[1]), np.float32)
    rl_cfg = copy.copy(cfg.rl)
    rl_cfg.seed = cfg.seed
    return train_rl(policy, reward, pool_texts, pool_emb, taxonomy, held_texts, np.asarray(held_gold),
                    np.asarray(held_judged, dtype=np.float32), held_emb, taxonomy.cost_optimal_thresholds(), rl_cfg, out_dir=out_dir, log=log,
                    leash_texts=leash_texts)


@dataclass
class FeedbackData:
    """What the reward model and RL train on, assembled one way for `train reward/rl` and the loop."""

    train_js: list[Judgment]
    held_js: list[Judgment]
    train_texts: list[str]  # reviewed items (consensus of their corrections)
    train_gold: np.ndarray
    train_judged: np.ndarray  # 1 where some reviewer judged the category
    held_texts: list[str]  # held-out reviewed items: reward accuracy, step and epoch selection
    held_gold: np.ndarray
    held_judged: np.ndarray
    unreviewed: list[str]  # extra texts for the RL pool, never reviewed (their labels are never used)

    @property
    def rl_pool(self) -> list[str]:
        return self.train_texts + self.unreviewed


def feedback_data(judgments: list[Judgment], n_categories: int, holdout: float, seed: int, candidates: list[str],
                  n_unreviewed: int, held_back: set[str] | frozenset = frozenset()) -> FeedbackData:
    """Drop judgments of held-back items (test, gate), split the rest into train/held-out (by item, stable),
    take each side's consensus, and sample up to `n_unreviewed` candidate texts nobody reviewed for the RL pool."""
    train_js, held_js = split_items(usable_judgments(judgments, held_back), holdout, seed)
    tr_texts, tr_gold, tr_judged = consensus(train_js, n_categories)
    held_texts, held_gold, held_judged = consensus(held_js, n_categories)
    reviewed = {j.text for j in judgments}
    fresh = list(dict.fromkeys(t for t in candidates if t not in reviewed))
    rng = np.random.default_rng(seed)
    extra = [fresh[i] for i in rng.choice(len(fresh), min(n_unreviewed, len(fresh)), replace=False)] if fresh else []
    return FeedbackData(train_js, held_js, tr_texts, tr_gold, tr_judged, held_texts, held_gold, held_judged, extra)


def embedding_table(policy: PolicyModel, texts: list[str]) -> dict[str, np.ndarray]:
    unique = list(dict.fromkeys(texts))
    return dict(zip(unique, embed_texts(policy, unique))) if unique else {}


def train_reward_from_store(store: Path, policy_path: Path, out: Path, taxonomy: Taxonomy, cfg: ImproveConfig,
                            held_back: set[str] | frozenset = frozenset(), log=print) -> dict:
    """`moderate train reward`: the store's judgments (none of a `held_back` item), split by item, into a
    reward model saved with its report."""
    import json

    from moderation.feedback import FeedbackStore
    from moderation.package import atomic_write_text

    train_js, held_js = split_items(usable_judgments(FeedbackStore(store, taxonomy.names).judgments(), held_back), cfg.holdout, cfg.seed)
    try:
        model, report = fit_reward(PolicyModel.load(policy_path), train_js, held_js, taxonomy, cfg, log=log)
    except ValueError as e:
        raise ModerationError(f"{store}: {e}") from None
    model.save(out)
    atomic_write_text(out / "reward_report.json", json.dumps(report, indent=2))
    return report


def rl_from_store(store: Path, policy_path: Path, reward_path: Path, out: Path, candidates: list[str], pool_size: int,
                  taxonomy: Taxonomy, cfg: ImproveConfig, held_back: set[str] | frozenset = frozenset(), log=print) -> RLHistory:
    """`moderate train rl`: RL against a saved reward model on the store's reviewed items plus unreviewed texts."""
    from moderation.feedback import FeedbackStore

    fb = feedback_data(FeedbackStore(store, taxonomy.names).judgments(), len(taxonomy), cfg.holdout, cfg.seed, candidates, pool_size,
                       held_back)
    if not fb.held_texts:
        raise ModerationError(f"{store}: no held-out reviewed items to measure RL against; pull more reviews first")
    policy = PolicyModel.load(policy_path)
    log("embedding the pool and held-out texts for the reward model…")
    embed = embedding_table(policy, fb.rl_pool + fb.held_texts)
    return rl_on_feedback(policy, RewardModel.load(reward_path), embed, fb.rl_pool, fb.held_texts, fb.held_gold, fb.held_judged,
                          taxonomy, cfg,
                          out_dir=out, log=log)
