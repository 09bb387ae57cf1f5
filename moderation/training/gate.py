"""The promotion gate: does a candidate beat production on the gate split by more than noise?

Both models score the same gate-split items (carved from validation, never reviewed, never tuned on), so
every comparison is paired, and a paired bootstrap over those items (the same resampled items for both
models) says how much of a difference is noise:

  utility   mean per-item reviewer utility of the cost-optimal decisions (masked to labelled categories);
            the candidate must be better with the one-sided 95% lower bound of the difference above 0.
            With `focus` (the gate items of the sources the reviews came from, the "reviewed platform") and
            `focus_categories` (what that platform's annotators labelled; default all): the focus is those
            items on those categories, and everything else (other items, and the platform's categories that
            only carry priors such as assumed negatives) is "the rest". A team that reviewed one platform's
            traffic asks: is it better there, and no worse elsewhere? So, with the same resampled items:
              better there   the focus's utility change has its 97.5% lower bound above 0, or the macro
                             AUPRC change of the focus categories (those with `min_positives` positives on
                             the focus items) has its 97.5% lower bound above 0. Two tests, each at 2.5%, so
                             a candidate no better than production passes at most 5% of the time, as with the
                             single test at 5% (Bonferroni). Ranking is the sensitive one: on the 399 OLID
                             gate items even the oracle's toxic utility gain (+0.015 per item) has an interval
                             across 0, while its AUPRC gain does not; re-tuned thresholds and recalibration
                             cannot move a ranking, so they can only pass through utility.
              not worse there  the focus's utility change has its 97.5% upper bound at or above 0 (decisions on
                             the platform did not fall beyond noise while its ranking improved)
              not worse elsewhere  the rest's utility change has its 95% lower bound above -`max_utility_drop`
                             per item (non-inferiority)
            The whole-split mean would dilute the platform's few hundred items in thousands of others (the
            adaptation benchmark: 399 OLID items of 5,252).
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
                seed: int = 0, focus: np.ndarray | None = None, max_utility_drop: float = MAX_UTILITY_DROP,
                focus_categories: np.ndarray | None = None) -> Gate:
    """Compare two models' probabilities on the same gate items (rows aligned) and decide. `focus` (a
    boolean per item) marks the items of the reviewed platform and `focus_categories` (a boolean per
    category) what its annotators labelled; see the module docstring."""
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
    cats = np.ones(len(taxonomy), bool) if focus_categories is None else np.asarray(focus_categories, dtype=bool)
    if len(cats) != len(taxonomy):
        raise ValueError(f"focus_categories has {len(cats)} entries for {len(taxonomy)} categories")
    focused = None
    if focus is not None and MIN_FOCUS_ITEMS <= focus.sum() < n and cats.any():
        focused = _focused_rule(candidate, production, targets, mask, taxonomy, focus, cats, counts, min_positives,
                                max_utility_drop, reasons, notes)
    else:
        if focus is not None:
            notes.append(f"{int(focus.sum())} gate items of the reviewed platform (need {MIN_FOCUS_ITEMS}, and some "
                         "others, and a labelled category): judged on the whole split instead")
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


def _focused_rule(candidate, production, targets, mask, taxonomy: Taxonomy, focus: np.ndarray, cats: np.ndarray,
                  counts: np.ndarray, min_positives: int, max_utility_drop: float, reasons: list, notes: list) -> dict:
    """The reviewed-platform rule (module docstring): appends its refusals to `reasons`; returns what it measured."""
    focus_mask = mask * focus[:, None] * cats[None, :]
    rest_mask = mask - focus_mask
    out = {}
    for part, m, rows, (q_lo, q_hi) in (("focus", focus_mask, focus, (2.5, 97.5)),
                                        ("rest", rest_mask, (rest_mask > 0).any(1), (5, 95))):
        d = (item_utility(candidate[rows], targets[rows], m[rows], taxonomy)
             - item_utility(production[rows], targets[rows], m[rows], taxonomy))
        w = counts[:, rows]
        part_boot = (w * d).sum(1) / np.maximum(w.sum(1), 1)
        out[part] = {"n": int(rows.sum()), "delta": float(d.mean()) if len(d) else 0.0,
                     "interval": [float(x) for x in np.percentile(part_boot, [q_lo, q_hi])]}
    f, r = out["focus"], out["rest"]
    f["categories"] = [c for c, k in zip(taxonomy.names, cats) if k]
    changes, ranked = [], []
    for c in np.nonzero(cats)[0]:
        keep = focus & (mask[:, c] > 0)
        y = (targets[keep, c] >= 0.5).astype(np.int64)
        if y.sum() < min_positives or y.sum() == len(y):
            notes.append(f"{taxonomy.names[c]}: {int(y.sum())} positives on the reviewed platform's gate items (fewer than "
                         f"{min_positives}): its ranking there is not judged")
            continue
        ones = np.ones((1, int(keep.sum())))
        changes.append(weighted_average_precision(candidate[keep, c], y, np.vstack([ones, counts[:, keep]]))
                       - weighted_average_precision(production[keep, c], y, np.vstack([ones, counts[:, keep]])))
        ranked.append(taxonomy.names[c])
    if changes:
        macro = np.mean(changes, axis=0)  # row 0: the change on the items as they are; then one per resample
        f["auprc_categories"], f["auprc_delta"] = ranked, float(macro[0])
        f["auprc_interval"] = [float(x) for x in np.nanpercentile(macro[1:], [2.5, 97.5])]
    utility_better = f["interval"][0] > 0
    ranking_better = bool(changes) and f["auprc_interval"][0] > 0
    if not (utility_better or ranking_better):
        ranking = (f"; macro AUPRC of {', '.join(ranked)} {f['auprc_delta']:+.4f} (95% interval {f['auprc_interval'][0]:+.4f} to "
                   f"{f['auprc_interval'][1]:+.4f})" if changes else "; no category with enough positives to judge its ranking")
        reasons.append(f"the reviewed platform's {f['n']} gate items ({', '.join(f['categories'])}) did not improve beyond noise: "
                       f"reviewer utility {f['delta']:+.4f} per item (95% interval {f['interval'][0]:+.4f} to "
                       f"{f['interval'][1]:+.4f}){ranking}; one of the lower ends must be above 0")
    if f["interval"][1] < 0:
        reasons.append(f"reviewer utility on the reviewed platform's {f['n']} gate items fell beyond noise: {f['delta']:+.4f} per "
                       f"item (95% interval {f['interval'][0]:+.4f} to {f['interval'][1]:+.4f})")
    if not r["interval"][0] > -max_utility_drop:
        reasons.append(f"reviewer utility on the rest of the gate split ({r['n']} items) may have fallen by more than "
                       f"{max_utility_drop} per item: {r['delta']:+.4f} (90% interval {r['interval'][0]:+.4f} to "
                       f"{r['interval'][1]:+.4f}; the lower end must be above {-max_utility_drop})")
    return out
