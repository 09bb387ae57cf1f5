"""moderation/training/evaluate.py: metrics on masked soft labels, thresholds, utility — exact values on small inputs."""

import json

import numpy as np
import pytest

from moderation.training.evaluate import (
    MIN_POSITIVES,
    Thresholds,
    auprc,
    binarise,
    cost_optimal_utility,
    evaluate_scores,
    expected_calibration_error,
    macro,
    markdown_summary,
    unsafe_target,
)


def test_binarise_counts_half_the_annotators_as_positive():
    assert binarise(np.array([0.0, 0.49, 0.5, 1.0])).tolist() == [0, 0, 1, 1]


def test_auprc_ignores_unknown_labels_and_refuses_too_few_positives():
    s = np.array([[0.9], [0.8], [0.7], [0.6], [0.5], [0.4], [0.3], [0.2], [0.1], [0.05], [0.99]])
    y = np.array([[1], [1], [1], [1], [1], [0], [0], [0], [0], [0], [0]], dtype=float)
    m = np.ones_like(y)
    assert auprc(s, y, m)[0] == pytest.approx(1.0 * 5 / 6 + 0, abs=0.2)  # one negative ranked on top
    m[-1] = 0  # that negative's label is unknown: ranking is perfect
    assert auprc(s, y, m)[0] == pytest.approx(1.0)
    few = y.copy()
    few[: 5 - MIN_POSITIVES + 1] = 0
    assert auprc(s, np.where(np.arange(11)[:, None] < 4, 1.0, 0.0), m)[0] is None  # 4 positives < MIN_POSITIVES
    assert auprc(s, np.ones_like(y), m)[0] is None  # all positive: undefined


def test_macro_skips_missing_categories():
    assert macro([0.5, None, 1.0]) == pytest.approx(0.75)
    assert np.isnan(macro([None]))


def test_expected_calibration_error_exact():
    assert expected_calibration_error(np.array([0.2, 0.2, 0.8, 0.8]), np.array([0.2, 0.2, 0.8, 0.8])) == pytest.approx(0.0)
    # one bin, mean prob 0.9, mean target 0.5
    assert expected_calibration_error(np.array([0.9, 0.9]), np.array([1.0, 0.0])) == pytest.approx(0.4)


def test_unsafe_target_is_known_only_when_it_can_be():
    targets = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    mask = np.array([[1, 0], [1, 1], [0, 0], [0, 1]], dtype=float)
    pos, known = unsafe_target(targets, mask, [0, 1])
    assert pos.tolist() == [1, 0, 0, 1] and known.tolist() == [1, 1, 0, 1]
    # exactly half the annotators counts as positive; an unknown label never does
    pos, known = unsafe_target(np.array([[0.5, 0.0], [1.0, 1.0]]), np.array([[1, 0], [0, 0]], dtype=float), [0, 1])
    assert pos.tolist() == [1, 0] and known.tolist() == [1, 0] and pos.dtype == np.float64


def test_cost_optimal_utility_uses_the_taxonomy_costs(taxonomy):
    c = len(taxonomy)
    thr = taxonomy.cost_optimal_thresholds()
    targets = np.zeros((2, c))
    targets[0, 2] = 1.0  # a violence positive
    probs = np.zeros((2, c))
    mask = np.ones((2, c))
    miss = cost_optimal_utility(probs, targets, mask, taxonomy)
    cat = taxonomy.categories[2]
    assert miss == pytest.approx(-cat.cost_fn / 2)  # one miss over two items
    probs[0, 2] = thr[2] + 1e-6
    assert cost_optimal_utility(probs, targets, mask, taxonomy) == pytest.approx(0.0)
    probs[1, 0] = 0.99  # a false toxic flag on the clean item
    assert cost_optimal_utility(probs, targets, mask, taxonomy) == pytest.approx(-taxonomy.categories[0].cost_fp / 2)


def test_report_uses_review_thresholds_for_utility_and_names_every_source(taxonomy):
    rng = np.random.default_rng(0)
    n, c = 400, len(taxonomy)
    y = (rng.random((n, c)) < 0.2).astype(float)
    p = np.clip(0.6 * y + 0.4 * rng.random((n, c)), 0, 1)
    m = np.ones_like(y)
    sources = ["a"] * 200 + ["b"] * 200
    t = Thresholds(review=[0.5] * c, block=[0.9] * c)
    report = evaluate_scores(p, y, m, sources, taxonomy, t)
    assert set(report["per_source"]) == {"a", "b"}
    expected_util = taxonomy.utility((p >= 0.5).astype(float), binarise(y), m).mean()
    assert report["utility_per_item"] == pytest.approx(expected_util)
    r = report["categories"]["toxic"]
    yb = binarise(y[:, 0]).astype(bool)
    assert r["recall_review"] == pytest.approx(((p[:, 0] >= 0.5) & yb).sum() / yb.sum())
    assert r["precision_block"] == pytest.approx(((p[:, 0] >= 0.9) & yb).sum() / (p[:, 0] >= 0.9).sum())
    assert r["threshold_review"] == 0.5 and r["threshold_block"] == 0.9
    assert "| toxic |" in markdown_summary(report)
    json.dumps(report)  # serialisable


def test_thresholds_round_trip_and_refuse_missing_categories():
    t = Thresholds(review=[0.2, 0.3], block=[0.8, 0.9], rules=[{"review_rule": "x"}, {"review_rule": "y"}])
    data = t.to_json(["a", "b"])
    assert data["a"] == {"review": 0.2, "block": 0.8, "review_rule": "x"}
    back = Thresholds.from_json(data, ["a", "b"])
    assert back.review == [0.2, 0.3] and back.block == [0.8, 0.9]
    with pytest.raises(ValueError, match="missing categories"):
        Thresholds.from_json(data, ["a", "b", "c"])


def test_write_report_writes_json_and_markdown(tmp_path, taxonomy):
    from moderation.training.evaluate import write_report

    rng = np.random.default_rng(1)
    y = (rng.random((100, len(taxonomy))) < 0.3).astype(float)
    report = evaluate_scores(np.clip(y * 0.5 + rng.random(y.shape) * 0.5, 0, 1), y, np.ones_like(y), ["s"] * 100, taxonomy,
                             Thresholds(review=[0.5] * len(taxonomy), block=[0.9] * len(taxonomy)))
    write_report(report, tmp_path / "out", "My title")
    assert json.loads((tmp_path / "out" / "report.json").read_text())["macro_auprc"] == pytest.approx(report["macro_auprc"])
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.startswith("# My title\n") and f"**{report['macro_auprc']:.3f}**" in md and "| s |" in md


def test_evaluate_model_tunes_on_validation_and_reports_the_split(tmp_path, taxonomy):
    from moderation.training.data import Example
    from moderation.training.evaluate import evaluate_model

    rng = np.random.default_rng(2)

    def examples(split, n):
        out = []
        for i in range(n):
            bad = i % 3 == 0
            out.append(Example(f"{split}{i}", f"{'bad' if bad else 'fine'} text {i}", "src", {c: float(bad) for c in taxonomy.names},
                               split=split))
        return out

    def score(texts):
        return np.array([[0.8 if t.startswith("bad") else 0.1] * len(taxonomy) for t in texts]) + rng.random((len(texts), 1)) * 0.05

    logs = []
    md = evaluate_model(score, "my-model", examples("validation", 90), examples("test", 60), "test", taxonomy, tmp_path / "e",
                        log=logs.append)
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["model"] == "my-model" and report["split"] == "test" and report["n_items"] == 60
    assert report["macro_auprc"] == pytest.approx(1.0) and set(report["thresholds"]) == set(taxonomy.names)
    assert md == (tmp_path / "e" / "report.md").read_text() and "Evaluation of my-model on the test split" in md
    assert (tmp_path / "e" / "pr_curves.png").is_file()
    assert logs == ["scoring 90 validation texts to tune thresholds, then 60 test texts…"]


def test_scorer_for_a_package_a_checkpoint_and_neither(tmp_path, tiny_package, tiny_checkpoint):
    from moderation.errors import ModerationError
    from moderation.runtime import Moderator
    from moderation.training.evaluate import scorer_for
    from moderation.training.policy import PolicyModel

    texts = ["you are awful", "see you soon"]
    score, taxonomy = scorer_for(tiny_package)
    assert taxonomy.names == Moderator.load(tiny_package).taxonomy.names
    assert np.allclose(score(texts), Moderator.load(tiny_package).score(texts))
    score, taxonomy = scorer_for(tiny_checkpoint, seed=0)
    assert taxonomy is None and np.allclose(score(texts), PolicyModel.load(tiny_checkpoint).predict_proba(texts), atol=1e-6)
    with pytest.raises(ModerationError, match="neither a model package .* nor a policy checkpoint"):
        scorer_for(tmp_path)


def test_category_metrics_exact_on_a_small_case(taxonomy):
    from moderation.training.evaluate import category_metrics

    c = len(taxonomy)
    s = np.array([0.9, 0.8, 0.5, 0.7, 0.3, 0.2, 0.1, 0.6, 0.4])  # item 8 is masked out
    y = np.array([1, 1, 1, 1, 0, 0, 0, 1, 1.0])
    probs, targets = np.tile(s[:, None], (1, c)), np.tile(y[:, None], (1, c))
    mask = np.ones_like(targets)
    mask[8] = 0
    rows = category_metrics(probs, targets, mask, taxonomy, Thresholds(review=[0.5] * c, block=[0.8] * c))
    r = rows["toxic"]
    assert set(r) == {"n", "positives", "auprc", "roc_auc", "f1_review", "f1_block", "recall_review", "precision_block", "ece",
                      "threshold_review", "threshold_block"}
    assert r["n"] == 8 and r["positives"] == 5
    # at >= 0.5: flagged 0.9, 0.8, 0.5, 0.7, 0.6 -> all five positives, no negative
    assert r["recall_review"] == 1.0 and r["f1_review"] == 1.0
    # at >= 0.8: flagged 0.9, 0.8 -> precision 1, recall 0.4
    assert r["precision_block"] == 1.0 and r["f1_block"] == pytest.approx(2 * 0.4 / 1.4)
    assert r["auprc"] == pytest.approx(1.0) and r["roc_auc"] == pytest.approx(1.0)
    assert r["ece"] == pytest.approx(expected_calibration_error(s[:8], y[:8]))
    none_flagged = category_metrics(probs, targets, mask, taxonomy, Thresholds(review=[0.95] * c, block=[0.99] * c))["toxic"]
    assert none_flagged["precision_block"] is None and none_flagged["f1_review"] == 0.0 and none_flagged["recall_review"] == 0.0
    few = category_metrics(probs[:5], targets[:5], mask[:5], taxonomy, Thresholds(review=[0.5] * c, block=[0.8] * c))["toxic"]
    assert few["positives"] == 4 and few["auprc"] is None and few["roc_auc"] is None and few["f1_review"] is None
    all_pos = np.ones((6, c))
    assert category_metrics(probs[:6], all_pos, np.ones((6, c)), taxonomy, Thresholds(review=[0.5] * c, block=[0.8] * c))["toxic"]["auprc"] is None


def test_tune_thresholds_rules_exact(taxonomy):
    from moderation.training.evaluate import BLOCK_FALLBACK, MAX_BLOCK, MIN_BAND, MIN_TUNE_POSITIVES, tune_thresholds

    c = len(taxonomy)
    floors = taxonomy.cost_optimal_thresholds()
    n_neg = 200
    # toxic: exactly MIN_TUNE_POSITIVES positives, perfectly separated -> a precision-tuned block threshold
    pos = np.linspace(0.95, 0.99, MIN_TUNE_POSITIVES)
    neg = np.linspace(0.0, 0.9, n_neg)
    s = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(MIN_TUNE_POSITIVES), np.zeros(n_neg)])
    probs, targets = np.tile(s[:, None], (1, c)), np.tile(y[:, None], (1, c))
    mask = np.ones_like(targets)
    targets[0, 1] = 0.0  # hate: one positive fewer than MIN_TUNE_POSITIVES -> fallback
    mask[:, 2] = 0  # violence: nothing known -> no recall reported, fallback
    t = tune_thresholds(probs, targets, mask, taxonomy)
    # precision 0.9 with 20 positives allows 2 negatives above the threshold: the second-highest negative
    assert t.review[0] == pytest.approx(floors[0]) and t.block[0] == pytest.approx(neg[-2])
    assert t.rules[0] == {"review_rule": f"cost threshold {taxonomy.categories[0].cost_fp:g}/({taxonomy.categories[0].cost_fp:g}"
                                         f"+{taxonomy.categories[0].cost_fn:g})", "review_recall": 1.0, "review_recall_met": True,
                          "block_rule": "precision 0.90"}
    assert t.block[1] == BLOCK_FALLBACK and t.rules[1]["block_rule"] == f"fallback 0.9 (only {MIN_TUNE_POSITIVES - 1} validation positives)"
    assert "review_recall" not in t.rules[2] and t.block[2] == BLOCK_FALLBACK
    # a recall exactly at the target counts as met, and recall is rounded to 3 places
    s2 = np.concatenate([np.full(9, 0.9), [floors[0] - 0.01], np.zeros(50)])
    y2 = np.concatenate([np.ones(10), np.zeros(50)])
    t2 = tune_thresholds(np.tile(s2[:, None], (1, c)), np.tile(y2[:, None], (1, c)), np.ones((60, c)), taxonomy)
    assert t2.rules[0]["review_recall"] == 0.9 and t2.rules[0]["review_recall_met"] is True
    # a score exactly at the review threshold is caught
    s3 = np.concatenate([np.full(10, floors[0]), np.zeros(50)])
    t3 = tune_thresholds(np.tile(s3[:, None], (1, c)), np.tile(y2[:, None], (1, c)), np.ones((60, c)), taxonomy)
    assert t3.rules[0]["review_recall"] == 1.0
    # review is pulled down when the block threshold sits near it; block never above MAX_BLOCK
    assert all(b <= MAX_BLOCK and b - r >= MIN_BAND - 1e-12 for r, b in zip(t.review, t.block))
