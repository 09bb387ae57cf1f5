"""The cheap baselines feedback must beat: utility-optimal thresholds and a recalibration on reviewed items."""

import numpy as np
import pytest

from moderation.training.baselines import Recalibration, utility_thresholds
from moderation.training.evaluate import utility_at


def test_utility_thresholds_are_the_best_cut_per_category(taxonomy):
    rng = np.random.default_rng(0)
    n, c = 400, len(taxonomy)
    y = (rng.random((n, c)) < 0.2).astype(float)
    p = np.clip(0.3 * y + rng.random((n, c)) * 0.7, 0, 1).round(2)  # ties on purpose
    mask = np.ones_like(y)
    mask[:, -1] = 0  # nobody labelled the last category
    t = utility_thresholds(p, y, mask, taxonomy)
    assert t[-1] == taxonomy.cost_optimal_thresholds()[-1]
    best = utility_at(p, y, mask, t, taxonomy)
    for k in range(c - 1):  # no other cut of any single category does better
        for cut in np.r_[np.unique(p[:, k]), 1.01]:
            other = t.copy()
            other[k] = cut
            assert utility_at(p, y, mask, other, taxonomy) <= best + 1e-12
    assert best >= utility_at(p, y, mask, taxonomy.cost_optimal_thresholds(), taxonomy)


def test_utility_thresholds_flag_nothing_or_everything_when_that_is_best(taxonomy):
    p = np.array([[0.9], [0.8], [0.7]]).repeat(len(taxonomy), 1)
    none = utility_thresholds(p, np.zeros_like(p), np.ones_like(p), taxonomy)
    assert (none > 1.0).all()  # only negatives: flag nothing
    every = utility_thresholds(p, np.ones_like(p), np.ones_like(p), taxonomy)
    assert (every <= 0.7).all() and (every > 0).all()  # only positives: flag all


def test_recalibration_fixes_overconfidence_on_judged_categories_only():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, (3000, 2))
    truth = 1 / (1 + np.exp(-(0.5 * z - 1.0)))  # the model is overconfident and too eager
    gold = (rng.random(truth.shape) < truth).astype(float)
    reported = 1 / (1 + np.exp(-z))
    judged = np.ones_like(gold)
    judged[:, 1] = 0  # the second category was never judged
    cal = Recalibration.fit(reported[:2000], gold[:2000], judged[:2000])
    assert cal.scale[0] == pytest.approx(0.5, abs=0.1) and cal.shift[0] == pytest.approx(-1.0, abs=0.15)
    assert cal.scale[1] == 1.0 and cal.shift[1] == 0.0  # unjudged: the identity, exactly

    def log_loss(q):
        return -np.mean(gold[2000:, 0] * np.log(q) + (1 - gold[2000:, 0]) * np.log(1 - q))

    assert log_loss(cal(reported[2000:])[:, 0]) < log_loss(reported[2000:, 0]) - 0.05
    order = np.argsort(reported[:, 0])
    assert (np.diff(cal(reported)[order, 0]) >= 0).all()  # the ranking is unchanged
    few = Recalibration.fit(reported[:5], gold[:5], judged[:5])
    assert abs(few.scale[0] - 1) < 0.1 and abs(few.shift[0]) < 0.1  # five reviews barely move it
