"""scripts/bias_breakdown.py: the subgroup negatives that score above hate about other groups, by source."""

import importlib.util
from pathlib import Path

import numpy as np

from moderation.training.data import Example

_spec = importlib.util.spec_from_file_location("bias_breakdown", Path(__file__).resolve().parent.parent / "scripts" / "bias_breakdown.py")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)


def test_only_subgroup_negatives_above_the_median_background_positive_are_listed():
    ex = [Example("a", "trans people are welcome", "toxigen_statements", {"hate": 0.0}),      # scored high: listed
          Example("b", "trans rights are human rights", "edos_sexism", {"hate": 0.0}),         # scored low: not listed
          Example("c", "hate about trans people", "gab_hate_corpus", {"hate": 1.0}),           # a subgroup positive
          Example("d", "hate about another group", "gab_hate_corpus", {"hate": 1.0}),          # background positives
          Example("e", "hate about a third group", "gab_hate_corpus", {"hate": 1.0}),
          Example("f", "a benign text", "olid_v1", {"hate": 0.0})]                             # background negative
    scores = np.array([0.9, 0.1, 0.95, 0.6, 0.8, 0.05])
    y = np.array([e.labels["hate"] >= 0.5 for e in ex])
    membership = [{"trans"}, {"trans"}, {"trans"}, set(), set(), set()]
    out = _module.outscoring_negatives(ex, scores, y, membership)["trans"]
    assert out["median_background_positive"] == 0.7
    assert out["subgroup_negatives"] == 2 and out["above_median_background_positive"] == 1
    assert out["by_source"] == {"toxigen_statements": 1}
    assert [e["text"] for e in out["examples"]] == ["trans people are welcome"]
