"""The plots the training commands write next to their results (checked by eye, not by tests: kept apart so
that mutation testing of the numeric code is not swamped by styling lines)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve

from moderation.taxonomy import Taxonomy
from moderation.training.evaluate import MIN_POSITIVES, binarise


def plot_pr_curves(probs: np.ndarray, targets: np.ndarray, mask: np.ndarray, taxonomy: Taxonomy, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5.5))
    for c, name in enumerate(taxonomy.names):
        keep = mask[:, c] > 0
        y = binarise(targets[keep, c])
        if y.sum() < MIN_POSITIVES or y.sum() == len(y):
            continue
        p, r, _ = precision_recall_curve(y, probs[keep, c])
        ax.plot(r, p, label=f"{name} (AP {average_precision_score(y, probs[keep, c]):.2f}, n+={int(y.sum())})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("Precision-recall per category (test split)")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def plot_rl_history(history, path: Path) -> None:
    """Reward, KL, entropy per step and held-out utility / reward-model score per evaluation."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plotting is optional; the JSON history is always written
        return
    rows = [r for r in history.rows if r.get("reward") is not None]
    evals = [r for r in history.rows if r.get("heldout_utility") is not None]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.2))
    for ax, key in zip(axes[:3], ("reward", "kl", "entropy")):
        ax.plot([r["step"] for r in rows], [r[key] for r in rows])
        ax.set_title(key if key != "kl" else "KL to reference")
        ax.set_xlabel("step")
    ax = axes[3]
    ax.plot([r["step"] for r in evals], [r["heldout_utility"] for r in evals], marker="o", label="held-out utility")
    ax2 = ax.twinx()
    ax2.plot([r["step"] for r in evals], [r["heldout_rm_reward"] for r in evals], marker="x", color="tab:orange", label="reward model")
    ax.axvline(history.best_step, color="grey", linestyle=":")
    ax.set_title("held-out: utility (o) vs reward model (x)" + (" — stopped: reward hacking" if history.stopped_for_reward_hacking else ""),
                 fontsize=9)
    ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
