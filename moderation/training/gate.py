"""The promotion gate: does a candidate beat production on the gate split by more than noise?

Both models score the same gate-split items (carved from validation, never reviewed, never tuned on), so
every comparison is paired, and a paired bootstrap over those items (the same resampled items for both
models) says how much of a difference is noise:

  utility   mean per-item reviewer utility of the cost-optimal decisions (masked to labelled categories);
            the candidate must be better with the one-sided 95% lower bound of the difference above 0.
            With `focus` (the gate items of the sources the reviews came from, the "reviewed platform"):
            better there (lower bound above 0), and not worse on the rest by more than `max_utility_drop`
            per item (non-inferiority: the rest's lower bound above -max_utility_drop). A team that reviewed
            one platform's traffic asks exactly this; the whole-split mean dilutes the platform's few
            hundred items in thousands of others (the adaptation benchmark: 399 OLID items of 5,252).
  AUPRC     per category; a category vetoes only when it has at least `min_positives` positives, its
            AUPRC fell by more than `max_auprc_drop`, and the one-sided 95% upper bound of the change is
            below 0 (the fall is real, not a few items moving). Categories with too few positives are
            named in `notes` and cannot veto.

The first version has nothing to be compared with and passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from moderation.taxonomy import Taxonomy

MAX_AUPRC_DROP = 0.01
MAX_UTILITY_DROP = 0.01  # per item, on the gate items outside the focus
MIN_POSITIVES = 20
MIN_FOCUS_ITEMS = 30  # fewer focus items than this: the whole-split rule applies
N_BOOT = 500


@dataclass
class Gate:
    passed: bool
    reasons: list[str] = field(default_factory=list)  # why it was refused (or "first version")
    utility_delta: float | None = None
    utility_interval: list[float] | None = None  # [5th, 95th] percentile of the bootstrap difference
    auprc_deltas: dict[str, float] = field(default_factory=dict)
    auprc_intervals: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what could not be judged (too few positives)
    n_items: int = 0
    focus: dict | None = None  # with a focus: n, delta and interval on the focus items and on the rest


def weighted_average_precision(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision for each row of `weights` (how often each item was drawn), as scikit-learn computes
    it (one step per distinct score); `weights` of ones gives `average_precision_score`."""
    order = np.argsort(-scores, kind="stable")
    s, y, w = scores[order], labels[order].astype(np.float64), np.atleast_2d(weights)[:, order].astype(np.float64)
    tp, seen = np.cumsum(w * y, axis=1), np.cumsum(w, axis=1)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the end of each run of tied scores
    tp, seen = tp[:, last], seen[:, last]
    total = tp[:, -1:]
    precision = np.divide(tp, seen, out=np.zeros_like(tp), where=seen > 0)
    gained = np.diff(np.concatenate([np.zeros((len(tp), 1)), tp], axis=1), axis=1)
    return np.divide((gained * precision).sum(1), total[:, 0], out=np.full(len(tp), np.nan), where=total[:, 0] > 0)


def item_utility(probs: np.ndarray, targets: np.ndarray, mask: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """Reviewer utility of each item's cost-optimal decisions (p >= cost_fp / (cost_fp + cost_fn))."""
    decided = (probs >= taxonomy.cost_optimal_thresholds()).astype(np.float64)
    return taxonomy.utility(decided, (targets >= 0.5).astype(np.float64), mask)


def paired_gate(candidate: np.ndarray, production: np.ndarray, targets: np.ndarray, mask: np.ndarray, taxonomy: Taxonomy,
                max_auprc_drop: float = MAX_AUPRC_DROP, min_positives: int = MIN_POSITIVES, n_boot: int = N_BOOT,
                seed: int = 0, focus: np.ndarray | None = None, max_utility_drop: float = MAX_UTILITY_DROP) -> Gate:
    """Compare two models' probabilities on the same gate items (rows aligned) and decide. `focus` (a
    boolean per item) marks the items of the reviewed platform; see the module docstring."""
    n = len(targets)
    if n == 0:
        return Gate(False, ["the gate split is empty: nothing to compare the models on"])
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    counts = np.stack([np.bincount(d, minlength=n) for d in draws])  # how often each item is in each resample
    reasons, notes = [], []

    diff = item_utility(candidate, targets, mask, taxonomy) - item_utility(production, targets, mask, taxonomy)
    du, boot = float(diff.mean()), (counts * diff).sum(1) / n
    lo, hi = (float(x) for x in np.percentile(boot, [5, 95]))
    focus = None if focus is None else np.asarray(focus, dtype=bool)
    if focus is not None and len(focus) != n:
        raise ValueError(f"focus has {len(focus)} entries for {n} gate items")
    focused = None
    if focus is not None and MIN_FOCUS_ITEMS <= focus.sum() < n:
        focused = {}
        for part, rows in (("focus", focus), ("rest", ~focus)):
            w = counts[:, rows]
            part_boot = (w * diff[rows]).sum(1) / np.maximum(w.sum(1), 1)
            focused[part] = {"n": int(rows.sum()), "delta": float(diff[rows].mean()),
                             "interval": [float(x) for x in np.percentile(part_boot, [5, 95])]}
        f, r = focused["focus"], focused["rest"]
        if not f["interval"][0] > 0:
            reasons.append(f"reviewer utility on the reviewed platform's {f['n']} gate items did not improve beyond noise: "
                           f"{f['delta']:+.4f} per item (90% interval {f['interval'][0]:+.4f} to {f['interval'][1]:+.4f}; "
                           "the lower end must be above 0)")
        if not r["interval"][0] > -max_utility_drop:
            reasons.append(f"reviewer utility on the other {r['n']} gate items may have fallen by more than {max_utility_drop} "
                           f"per item: {r['delta']:+.4f} (90% interval {r['interval'][0]:+.4f} to {r['interval'][1]:+.4f}; "
                           f"the lower end must be above {-max_utility_drop})")
    else:
        if focus is not None:
            notes.append(f"{int(focus.sum())} gate items of the reviewed platform (need {MIN_FOCUS_ITEMS}, and some "
                         "others): judged on the whole split instead")
        if not lo > 0:
            reasons.append(f"reviewer utility did not improve beyond noise: {du:+.4f} per item (90% interval "
                           f"{lo:+.4f} to {hi:+.4f}; the lower end must be above 0)")

    deltas, intervals = {}, {}
    for c, name in enumerate(taxonomy.names):
        keep = mask[:, c] > 0
        y = (targets[keep, c] >= 0.5).astype(np.int64)
        if y.sum() < min_positives or y.sum() == len(y):
            notes.append(f"{name}: {int(y.sum())} positives on the gate split (fewer than {min_positives}): cannot veto")
            continue
        ones = np.ones(int(keep.sum()))
        after, before = (float(weighted_average_precision(p[keep, c], y, ones)[0]) for p in (candidate, production))
        change = (weighted_average_precision(candidate[keep, c], y, counts[:, keep])
                  - weighted_average_precision(production[keep, c], y, counts[:, keep]))
        c_lo, c_hi = (float(x) for x in np.nanpercentile(change, [5, 95]))
        deltas[name], intervals[name] = after - before, [c_lo, c_hi]
        if after < before - max_auprc_drop and c_hi < 0:
            reasons.append(f"{name}: gate-split AUPRC fell {before - after:.4f} ({before:.4f} -> {after:.4f}), more than "
                           f"{max_auprc_drop}, and not by noise (90% interval of the change {c_lo:+.4f} to {c_hi:+.4f})")
    return Gate(not reasons, reasons, du, [lo, hi], deltas, intervals, notes, n, focused)
