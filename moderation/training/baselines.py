"""The cheap tricks that feedback must beat, at the same budget (issue: "feedback must teach the model
something a re-tuned threshold or a recalibration does not").

  utility_thresholds  per-category thresholds that maximise reviewer utility on labelled items (e.g. the
                      validation split): no reviews at all, just the supervised model's scores re-cut
  Recalibration       per-category Platt scaling (a * logit + b) fitted on the reviewed items' consensus,
                      only where reviewers judged the category, pulled towards the identity so that a few
                      reviews cannot swing it: the reviews used to re-map scores instead of to train

Both leave each category's ranking unchanged (AUPRC moves only through ties), so any AUPRC a feedback
method gains over them is something they could not have given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moderation.taxonomy import Taxonomy


def utility_thresholds(probs: np.ndarray, targets: np.ndarray, mask: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """For each category, the threshold (flag at p >= t) with the best reviewer utility on these items.

    Reviewer utility is a sum over categories, so each category is cut on its own. Candidates are the
    midpoints between distinct scores plus "flag nothing"; a category with no labelled items keeps its
    cost-optimal threshold."""
    out = taxonomy.cost_optimal_thresholds().astype(np.float64).copy()
    for c in range(probs.shape[1]):
        keep = mask[:, c] > 0
        if not keep.any():
            continue
        p, y = probs[keep, c], (targets[keep, c] >= 0.5).astype(np.float64)
        order = np.argsort(-p, kind="stable")
        p, y = p[order], y[order]
        # flagging the top k items: misses = positives below k, false flags = negatives in the top k
        tp = np.concatenate([[0.0], np.cumsum(y)])
        fp = np.concatenate([[0.0], np.cumsum(1 - y)])
        cost = taxonomy.cost_fn[c] * (y.sum() - tp) + taxonomy.cost_fp[c] * fp
        ends = np.r_[np.nonzero(np.diff(p))[0] + 1, len(p)]  # cut only between distinct scores
        k = int(min(np.r_[0, ends], key=lambda i: (cost[i], -i)))  # ties: flag more (misses cost more)
        out[c] = 1.0 + 1e-9 if k == 0 else (p[k - 1] + p[k]) / 2 if k < len(p) else p[-1] / 2
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


@dataclass
class Recalibration:
    scale: np.ndarray  # per category, a
    shift: np.ndarray  # per category, b

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(self.scale * _logit(probs) + self.shift)))

    @classmethod
    def fit(cls, probs: np.ndarray, gold: np.ndarray, judged: np.ndarray, prior: float = 10.0, steps: int = 25) -> "Recalibration":
        """Per-category Platt scaling: Newton's method on the judged items' log loss plus
        `prior` * ((a - 1)^2 + b^2), i.e. `prior` items' worth of pull towards the identity, so that a few
        reviews barely move it. An unjudged category stays exactly the identity."""
        z = _logit(probs)
        scale, shift = np.ones(probs.shape[1]), np.zeros(probs.shape[1])
        for c in range(probs.shape[1]):
            m, x, g = judged[:, c], z[:, c], gold[:, c]
            a, b = 1.0, 0.0
            for _ in range(steps):
                q = 1 / (1 + np.exp(-(a * x + b)))
                r, w = m * (q - g), m * q * (1 - q)
                grad = np.array([(r * x).sum() + 2 * prior * (a - 1), r.sum() + 2 * prior * b])
                hess = np.array([[(w * x * x).sum(), (w * x).sum()], [(w * x).sum(), w.sum()]]) + 2 * prior * np.eye(2)
                a, b = np.array([a, b]) - np.linalg.solve(hess, grad)
            scale[c], shift[c] = max(a, 1e-3), b  # a stays positive: recalibration never reverses a ranking
        return cls(scale, shift)
