"""scripts/in_domain_breakdown.py: per-source AUPRC of two score sets with a paired interval, and which negatives
outrank the median positive when sources are pooled."""

import importlib.util
from pathlib import Path

import numpy as np

from moderation.training.data import Example

_spec = importlib.util.spec_from_file_location("in_domain_breakdown", Path(__file__).resolve().parent.parent / "scripts" / "in_domain_breakdown.py")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
breakdown = _module.breakdown


def _examples():
    # two sources, each ranked perfectly inside itself by both score sets; "new" lifts liar's negatives
    # above davidson's positives, so only the pooled AUPRC falls
    out = []
    for src in ("davidson_hate_offensive", "liar"):
        for i in range(20):
            out.append(Example(f"{src}:{i}", f"text {i}", src, {"hate": 1.0 if i < 6 else (0.3 if i == 6 else 0.0)}))
    return out


def test_a_fall_that_exists_only_when_sources_are_pooled_is_told_apart_from_one_inside_a_source():
    ex = _examples()
    y = np.array([e.labels["hate"] >= 0.5 for e in ex])
    within = np.array([0.9 if yi else 0.1 for yi in y])  # every positive above every negative, everywhere
    old = within[:, None]
    new = within.copy()
    new[20:] = np.where(y[20:], 0.99, 0.95)  # liar still ranks itself perfectly, but its negatives outrank davidson's positives
    rows = breakdown(ex, old, new[:, None], ["hate"], rounds=50)["hate"]
    assert rows["davidson_hate_offensive"]["old"] == rows["davidson_hate_offensive"]["new"] == 1.0
    assert rows["liar"]["new"] == 1.0
    assert rows["all"]["old"] == 1.0 and rows["all"]["new"] < 0.8
    assert rows["all"]["diff_90"][1] < 0
    above = rows["all"]["new_negatives_above_median_positive"]["by_source"]
    assert above == {"liar": {"n": 14, "minority_vote": 1}}  # the 0.3-soft item counts as a minority vote


def test_sources_with_too_few_positives_are_left_out():
    ex = [Example(f"ethos:{i}", "t", "ethos", {"hate": 1.0 if i < 3 else 0.0}) for i in range(30)]
    s = np.linspace(0, 1, 30)[:, None]
    assert breakdown(ex, s, s, ["hate"], rounds=10) == {}
