"""Metrics, threshold tuning and evaluation reports.

Gold labels are soft (annotator vote fractions); for ranking metrics an item is positive when at least
half of its annotators chose the category (soft >= 0.5). Unknown labels (mask 0) are left out per
category. Thresholds come from validation data only (`tune_thresholds`, every rule named in the result):
  review = the cost threshold cost_fp / (cost_fp + cost_fn) on calibrated scores (send to a human): the
           score above which flagging saves reviewers more than it costs them by the taxonomy's own costs.
           The recall it keeps on validation is reported against `review_recall` ("review_recall_met").
           (0.3.0 used "the highest threshold that keeps review_recall": hate was reviewed from 0.10 and
           drowned queues, while self_harm, whose Reddit-history positives all score high, was reviewed only
           from 0.94 and missed short first-person statements at 0.4.)
  block  = the lowest threshold whose precision reaches `block_precision` with at least MIN_BLOCK_HITS
           true positives above it (act automatically); where validation never gets there, the fallback
           BLOCK_FALLBACK (a calibrated 0.9: nine in ten such items are positive) instead of "never";
  and always review + MIN_BAND <= block <= MAX_BLOCK, so each category can reach both decisions with a
  non-empty review band. A category with fewer than MIN_TUNE_POSITIVES validation positives gets the
  fallback block outright: a precision read off a handful of items is noise.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve, roc_auc_score

from moderation.taxonomy import Taxonomy

MIN_POSITIVES = 5  # fewer positives than this and a per-category number is noise: reported as None


def _finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def binarise(targets: np.ndarray) -> np.ndarray:
    return (targets >= 0.5).astype(np.int64)


def auprc(scores: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> list[float | None]:
    """Per-category average precision over the items whose label is known."""
    out = []
    for c in range(scores.shape[1]):
        keep = mask[:, c] > 0
        y = binarise(targets[keep, c])
        if y.sum() < MIN_POSITIVES or y.sum() == len(y):
            out.append(None)
            continue
        out.append(float(average_precision_score(y, scores[keep, c])))
    return out


def macro(values: list[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else float("nan")


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = 15) -> float:
    """ECE of probabilities against soft targets (equal-width bins, weighted by bin size)."""
    if len(probs) == 0:
        return float("nan")
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            ece += sel.mean() * abs(probs[sel].mean() - targets[sel].mean())
    return float(ece)


MIN_TUNE_POSITIVES = 20
MIN_BLOCK_HITS = 10
BLOCK_FALLBACK = 0.9
MIN_BAND = 0.05
MAX_BLOCK = 0.99


@dataclass
class Thresholds:
    review: list[float]
    block: list[float]
    rules: list[dict] | None = None  # how each pair was set (tune_thresholds fills it)

    def to_json(self, categories: list[str]) -> dict:
        out = {c: {"review": r, "block": b} for c, r, b in zip(categories, self.review, self.block)}
        for c, rule in zip(categories, self.rules or []):
            out[c].update(rule)
        return out

    @classmethod
    def from_json(cls, data: dict, categories: list[str]) -> "Thresholds":
        missing = [c for c in categories if c not in data]
        if missing:
            raise ValueError(f"thresholds are missing categories {missing}")
        return cls(review=[float(data[c]["review"]) for c in categories], block=[float(data[c]["block"]) for c in categories])


def tune_thresholds(probs: np.ndarray, targets: np.ndarray, mask: np.ndarray, taxonomy: Taxonomy) -> Thresholds:
    """Two thresholds per category from validation data (the rules are in the module docstring)."""
    review, block, rules = [], [], []
    floors = taxonomy.cost_optimal_thresholds()
    for c, cat in enumerate(taxonomy.categories):
        keep = mask[:, c] > 0
        y, s = binarise(targets[keep, c]), probs[keep, c]
        floor = float(floors[c])
        n_pos = int(y.sum())
        r = floor
        rule = {"review_rule": f"cost threshold {cat.cost_fp:g}/({cat.cost_fp:g}+{cat.cost_fn:g})"}
        if n_pos:
            recall = float((s[y == 1] >= r).mean())
            rule.update(review_recall=round(recall, 3), review_recall_met=bool(recall >= cat.review_recall))
        if n_pos < MIN_TUNE_POSITIVES or n_pos == len(y):
            b = BLOCK_FALLBACK
            rule["block_rule"] = f"fallback 0.9 (only {n_pos} validation positives)"
        else:
            precision, recall, thr = precision_recall_curve(y, s)
            hits = np.rint(recall[:-1] * n_pos)  # true positives at or above each threshold
            ok = np.nonzero((precision[:-1] >= cat.block_precision) & (hits >= MIN_BLOCK_HITS))[0]
            if len(ok):
                b, rule["block_rule"] = float(thr[ok[0]]), f"precision {cat.block_precision:.2f}"
            else:
                b, rule["block_rule"] = BLOCK_FALLBACK, f"fallback 0.9 (precision {cat.block_precision:.2f} not reached)"
        b = min(max(b, r + MIN_BAND), MAX_BLOCK)
        r = min(r, b - MIN_BAND)
        review.append(float(r))
        block.append(float(b))
        rules.append(rule)
    return Thresholds(review=review, block=block, rules=rules)


def category_metrics(probs: np.ndarray, targets: np.ndarray, mask: np.ndarray, taxonomy: Taxonomy,
                     thresholds: Thresholds) -> dict[str, dict]:
    out = {}
    for c, name in enumerate(taxonomy.names):
        keep = mask[:, c] > 0
        y, s = binarise(targets[keep, c]), probs[keep, c]
        pos = int(y.sum())
        row = {"n": int(keep.sum()), "positives": pos, "auprc": None, "roc_auc": None, "f1_review": None,
               "f1_block": None, "recall_review": None, "precision_block": None,
               "ece": _finite(expected_calibration_error(s, targets[keep, c])) if keep.any() else None,
               "threshold_review": thresholds.review[c], "threshold_block": thresholds.block[c]}
        if MIN_POSITIVES <= pos < len(y):
            row["auprc"] = float(average_precision_score(y, s))
            row["roc_auc"] = float(roc_auc_score(y, s))
            yr, yb = s >= thresholds.review[c], s >= thresholds.block[c]
            row["f1_review"] = float(f1_score(y, yr, zero_division=0))
            row["f1_block"] = float(f1_score(y, yb, zero_division=0))
            row["recall_review"] = float((yr & (y == 1)).sum() / pos)
            row["precision_block"] = float((yb & (y == 1)).sum() / yb.sum()) if yb.any() else None
        out[name] = row
    return out


def unsafe_target(targets: np.ndarray, mask: np.ndarray, harmful: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """'Unsafe' = any harmful category positive. Known when some harmful category is positive, or when
    every harmful category the source labels is known and negative."""
    pos = ((targets[:, harmful] >= 0.5) & (mask[:, harmful] > 0)).any(1)
    all_known = (mask[:, harmful] > 0).any(1)
    return pos.astype(np.float64), (pos | all_known).astype(np.float64)


def utility_at(probs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None, thresholds, taxonomy: Taxonomy) -> float:
    """Mean reviewer utility per item of flagging each category at p >= its threshold (NaN with no items)."""
    if not len(probs):
        return float("nan")
    predicted = (np.asarray(probs) >= np.asarray(thresholds)).astype(np.float64)
    return float(taxonomy.utility(predicted, binarise(np.asarray(targets)), mask).mean())


def cost_optimal_utility(probs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None, taxonomy: Taxonomy) -> float:
    """Mean reviewer utility per item of the decisions p >= cost_fp / (cost_fp + cost_fn).

    Unlike the review-threshold utility, this needs no tuned thresholds, so two models (say, before and
    after RL) are compared on their decisions alone; the RL loop and the promotion gate use it.
    """
    return utility_at(probs, targets, mask, taxonomy.cost_optimal_thresholds(), taxonomy)


def evaluate_scores(probs: np.ndarray, targets: np.ndarray, mask: np.ndarray, sources: list[str], taxonomy: Taxonomy,
                    thresholds: Thresholds) -> dict:
    """The full report: per category overall and per source, plus macro numbers and reviewer utility."""
    report = {"categories": category_metrics(probs, targets, mask, taxonomy, thresholds), "per_source": {}}
    report["macro_auprc"] = macro([r["auprc"] for r in report["categories"].values()])
    report["utility_per_item"] = utility_at(probs, targets, mask, thresholds.review, taxonomy)
    report["utility_cost_optimal"] = cost_optimal_utility(probs, targets, mask, taxonomy)
    src = np.asarray(sources)
    for s in sorted(set(sources)):
        sel = src == s
        cats = category_metrics(probs[sel], targets[sel], mask[sel], taxonomy, thresholds)
        report["per_source"][s] = {c: {"n": v["n"], "positives": v["positives"], "auprc": v["auprc"]} for c, v in cats.items() if v["n"]}
    return report


def tune_on_validation(score, validation: list, taxonomy: Taxonomy) -> Thresholds:
    """Score the validation examples with `score` (texts -> probabilities) and tune thresholds on them: the
    one place thresholds come from (eval, export)."""
    from moderation.training.data import label_matrix

    y, m = label_matrix(validation, taxonomy.names)
    return tune_thresholds(np.asarray(score([e.text for e in validation])), y, m, taxonomy)


def evaluate_examples(score, examples: list, taxonomy: Taxonomy, thresholds: Thresholds) -> tuple[dict, np.ndarray]:
    """Score labelled examples and report on them (eval, export, registry); returns (report, probabilities)."""
    from moderation.training.data import label_matrix

    y, m = label_matrix(examples, taxonomy.names)
    probs = np.asarray(score([e.text for e in examples])) if examples else np.zeros((0, len(taxonomy)))
    report = evaluate_scores(probs, y, m, [e.source for e in examples], taxonomy, thresholds)
    report["n_items"] = len(examples)
    return report, probs


def markdown_summary(report: dict, title: str = "Evaluation") -> str:
    def f(x):
        return "—" if x is None else f"{x:.3f}"

    lines = [f"# {title}", "", f"Macro AUPRC: **{report['macro_auprc']:.3f}**; reviewer utility per item: "
             f"**{report['utility_per_item']:.3f}** (cost-weighted, at the review thresholds; higher is better).", "",
             "| category | n | positives | AUPRC | ROC-AUC | F1@review | recall@review | F1@block | precision@block | ECE | review thr | block thr |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c, r in report["categories"].items():
        lines.append(f"| {c} | {r['n']} | {r['positives']} | {f(r['auprc'])} | {f(r['roc_auc'])} | {f(r['f1_review'])} | "
                     f"{f(r['recall_review'])} | {f(r['f1_block'])} | {f(r['precision_block'])} | {f(r['ece'])} | "
                     f"{r['threshold_review']:.3f} | {r['threshold_block']:.3f} |")
    lines += ["", "## AUPRC per source", ""]
    cats = list(report["categories"])
    lines.append("| source | " + " | ".join(cats) + " |")
    lines.append("|---|" + "---|" * len(cats))
    for s, rows in report["per_source"].items():
        cells = []
        for c in cats:
            r = rows.get(c)
            cells.append("—" if r is None else f"{f(r['auprc'])} ({r['positives']}/{r['n']})")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: AUPRC (positives/labelled); — where the source does not label the category or has < 5 positives."]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: Path, title: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    (out_dir / "report.md").write_text(markdown_summary(report, title))


def scorer_for(model: Path, seed: int = 0):
    """(score function texts -> probabilities, the model's taxonomy or None) for a package or a checkpoint."""
    from moderation.errors import ModerationError

    if (model / "manifest.json").is_file():  # the torch-free path: a package needs no seed and no torch
        from moderation.runtime import Moderator

        runtime = Moderator.load(model)
        return runtime.score, runtime.taxonomy
    if (model / "policy_config.json").is_file():
        from moderation.training.policy import PolicyModel, set_seed

        set_seed(seed)
        policy = PolicyModel.load(model)
        return (lambda texts: policy.predict_proba(texts, progress=True)), None
    raise ModerationError(f"{model}: neither a model package (manifest.json) nor a policy checkpoint (policy_config.json)")


def evaluate_model(score, name: str, validation: list, target: list, split: str, taxonomy: Taxonomy, out: Path,
                   log=lambda message: None) -> str:
    """`moderate eval`: thresholds tuned on `validation`, measured on `target` (the `split`); writes report.json,
    report.md and pr_curves.png to `out` and returns the Markdown."""
    from moderation.training.data import label_matrix
    from moderation.training.plots import plot_pr_curves

    log(f"scoring {len(validation)} validation texts to tune thresholds, then {len(target)} {split} texts…")
    thresholds = tune_on_validation(score, validation, taxonomy)
    report, probs = evaluate_examples(score, target, taxonomy, thresholds)
    report.update(model=name, split=split, thresholds=thresholds.to_json(taxonomy.names))
    write_report(report, out, f"Evaluation of {name} on the {split} split")
    plot_pr_curves(probs, *label_matrix(target, taxonomy.names), taxonomy, out / "pr_curves.png")
    return (out / "report.md").read_text()
