"""moderation/training/registry.py on its own: the gate's exact rules and words, the registry file, the production
symlink, promotion, rollback and the listing people read."""

import json
import os
import shutil

import pytest

import numpy as np

from moderation.training.data import Example
from moderation.training.gate import paired_gate, weighted_average_precision
from moderation.training.registry import (Registry, RegistryError, _export_test_report, has_utility, listing, metrics_from_report,
                                          package_metrics)

BASE = {"toxic": 0.9, "hate": 0.4}


def m(utility, **auprc):
    """Test-split registry metrics (reported and listed; the gate never reads them)."""
    return {"utility_cost_optimal": utility, "auprc": {**BASE, **auprc}, "macro_auprc": 0.5}


def gate_set(taxonomy, n=1500, seed=0):
    """Gate-split items with known labels (every category labelled, ~12% positive) and a production model whose
    probabilities carry the labels through noise."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(taxonomy))) < 0.12).astype(float)
    items = [Example(f"g{i}", f"gate text {i}", "src", {c: float(v) for c, v in zip(taxonomy.names, row)}, split="gate")
             for i, row in enumerate(y)]
    production = 1 / (1 + np.exp(-(3.0 * (y - 0.5) + rng.normal(0, 2.0, y.shape))))
    return items, y, production


def sharper(y, production, rng, noise=1.0):
    """A better model: the same labels through less noise."""
    return 1 / (1 + np.exp(-(3.0 * (y - 0.5) + rng.normal(0, noise, y.shape))))


def test_weighted_average_precision_is_scikit_learns_with_ties_and_repeats():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 10, 300) / 10, (rng.random(300) < 0.3).astype(int)  # many tied scores
    assert weighted_average_precision(s, y, np.ones(300))[0] == pytest.approx(average_precision_score(y, s))
    w = rng.integers(0, 3, 300)  # a bootstrap resample: each item drawn 0, 1 or 2 times
    assert weighted_average_precision(s, y, w)[0] == pytest.approx(average_precision_score(np.repeat(y, w), np.repeat(s, w)))
    assert np.isnan(weighted_average_precision(s, np.zeros(300, int), np.ones(300))[0])


def test_gate_promotes_a_real_gain_and_reads_noise_as_noise(taxonomy):
    items, y, prod = gate_set(taxonomy)
    mask = np.ones_like(y)
    rng = np.random.default_rng(1)
    better = paired_gate(sharper(y, prod, rng), prod, y, mask, taxonomy)
    assert better.passed and better.reasons == [] and better.utility_delta > 0 and better.utility_interval[0] > 0
    assert better.n_items == len(items) and set(better.auprc_deltas) == set(taxonomy.names)
    same = paired_gate(prod, prod, y, mask, taxonomy)
    assert not same.passed and same.reasons[0].startswith("reviewer utility did not improve beyond noise: +0.0000 per item")
    nudged = prod.copy()
    flips = np.nonzero((y[:, 0] == 1) & (prod[:, 0] < taxonomy.cost_optimal_thresholds()[0]))[0][:2]
    nudged[flips, 0] = 0.99  # two more harms caught out of 1,500 items: a gain, but within noise
    small = paired_gate(nudged, prod, y, mask, taxonomy)
    assert small.utility_delta > 0 and not small.passed and "beyond noise" in small.reasons[0]


def test_a_category_vetoes_only_a_real_fall_with_enough_positives(taxonomy):
    items, y, prod = gate_set(taxonomy)
    mask = np.ones_like(y)
    cand = sharper(y, prod, np.random.default_rng(2))
    hate = taxonomy.names.index("hate")
    cand[:, hate] = np.random.default_rng(3).random(len(y))  # hate now ranks by chance
    vetoed = paired_gate(cand, prod, y, mask, taxonomy)
    assert not vetoed.passed and vetoed.utility_interval[0] > 0  # better overall, but hate fell
    assert [r.split(":")[0] for r in vetoed.reasons] == ["hate"] and "not by noise" in vetoed.reasons[0]
    assert vetoed.auprc_intervals["hate"][1] < 0
    # the same fall on a category with too few positives cannot veto: it is named in the notes instead
    few = y.copy()
    few[20:, hate] = 0
    noted = paired_gate(cand, prod, few, mask, taxonomy, min_positives=20)
    assert "hate" not in noted.auprc_deltas and any(n.startswith("hate: ") and "cannot veto" in n for n in noted.notes)
    assert not any(r.startswith("hate") for r in noted.reasons)
    # unlabelled items do not count: masking hate out everywhere leaves it nothing to say
    masked = mask.copy()
    masked[:, hate] = 0
    assert "hate" not in paired_gate(cand, prod, y, masked, taxonomy).auprc_deltas
    assert not paired_gate(cand[:0], prod[:0], y[:0], mask[:0], taxonomy).passed  # an empty gate split refuses


def test_promotion_is_decided_on_the_gate_split_never_on_test_metrics(tmp_path, tiny_package, taxonomy):
    items, y, prod = gate_set(taxonomy)
    better = sharper(y, prod, np.random.default_rng(4))
    a, b = _pkg(tmp_path, "a", tiny_package), _pkg(tmp_path, "b", tiny_package)
    scores = {"a": prod, "b": better}
    scorer = lambda package: (lambda texts: scores[package.name])  # noqa: E731
    reg = Registry(tmp_path / "reg")
    reg.add("1.0.0", a, m(-0.1, hate=0.9))
    assert reg.promote("1.0.0").reasons == ["first version: nothing to compare with"]
    reg.add("1.0.1", b, m(-0.9, hate=0.1))  # far worse on test, better on the gate split: promoted
    result = reg.promote("1.0.1", gate_examples=items, scorer=scorer)
    assert result.passed and reg.production().version == "1.0.1"
    reg.add("1.0.2", a, m(0.0, hate=1.0))  # far better on test, worse on the gate split: refused
    assert not reg.promote("1.0.2", gate_examples=items, scorer=scorer).passed
    reg.add("1.0.3", b, m(0.0))
    no_split = reg.promote("1.0.3")
    assert not no_split.passed and no_split.reasons[0].startswith("no gate split to compare on")
    assert "never falls back to the test split" in no_split.reasons[0]


def test_the_gate_scores_the_real_packages(tmp_path, tiny_package, small_examples):
    reg = Registry(tmp_path / "reg")
    reg.add("1.0.0", tiny_package, m(-0.3))
    reg.promote("1.0.0")
    reg.add("1.0.1", _pkg(tmp_path, "copy", tiny_package), m(-0.3))
    same = reg.promote("1.0.1", gate_examples=small_examples["gate"])
    assert same.n_items == len(small_examples["gate"]) and same.utility_delta == 0.0  # the same model gains nothing
    assert not same.passed and reg.get("1.0.1").status == "rejected"


def test_metrics_from_report_takes_exactly_what_the_gate_needs():
    report = {"macro_auprc": 0.6, "utility_cost_optimal": -0.25, "utility_per_item": -0.3, "n_items": 12,
              "categories": {"toxic": {"auprc": 0.9, "n": 5}, "hate": {"auprc": None, "n": 3}}}
    assert metrics_from_report(report) == {"macro_auprc": 0.6, "auprc": {"toxic": 0.9, "hate": None},
                                           "utility_cost_optimal": -0.25, "utility_review": -0.3, "n_items": 12}
    del report["n_items"]
    assert metrics_from_report(report)["n_items"] is None


def test_export_reports_old_broken_and_missing(tmp_path):
    assert _export_test_report(tmp_path) == {} and not has_utility(tmp_path)
    (tmp_path / "export_report.json").write_text('{"test": {"macro_auprc": 0.5}}')
    assert not has_utility(tmp_path)  # predates the utility: measure it
    with pytest.raises(RegistryError, match="export report has no reviewer utility; measure it on the test split"):
        package_metrics(tmp_path)
    (tmp_path / "export_report.json").write_text('{"test": null}')
    assert _export_test_report(tmp_path) == {}
    (tmp_path / "export_report.json").write_text("{broken")
    with pytest.raises(RegistryError, match="export_report.json: not valid JSON"):
        has_utility(tmp_path)


def _pkg(tmp_path, name, tiny_package):
    out = tmp_path / name
    shutil.copytree(tiny_package, out)
    return out


def test_registry_file_symlink_promotion_and_rollback(tmp_path, tiny_package, taxonomy):
    items, y, prod = gate_set(taxonomy)
    scores = {"a": prod, "b": sharper(y, prod, np.random.default_rng(5))}
    scorer = lambda package: (lambda texts: scores[package.name])  # noqa: E731
    root = tmp_path / "reg"
    reg = Registry(root)
    inside = _pkg(root / "packages", "a", tiny_package)  # inside the registry: stored relative
    outside = _pkg(tmp_path, "b", tiny_package)  # outside: stored absolute
    reg.add("1.0.0", inside, m(-0.3))
    reg.add("1.0.1", outside, m(-0.2))
    assert reg.get("1.0.0").package == "packages/a" and reg.get("1.0.1").package == str(outside.resolve())
    assert reg.resolve("packages/a") == root / "packages/a" and reg.resolve(str(outside)) == outside and reg.resolve(None) is None
    with pytest.raises(RegistryError, match=r"no version '9.9' in .*; known: 1.0.0, 1.0.1"):
        reg.get("9.9")
    with pytest.raises(RegistryError, match="version 1.0.0 is already registered"):
        reg.add("1.0.0", inside, m(0))
    assert reg.promote("1.0.0").passed
    link = root / "production"
    assert os.readlink(link) == "packages/a" and not (root / ".production.tmp").exists()
    with pytest.raises(RegistryError, match="1.0.0 is already in production"):
        reg.promote("1.0.0")
    assert reg.promote("1.0.1", gate_examples=items, scorer=scorer).passed
    assert os.readlink(link) == str(outside.resolve())
    body = json.loads((root / "registry.json").read_text())
    assert body["format"] == 1 and body["production"] == "1.0.1" and body["history"] == ["1.0.0", "1.0.1"]
    assert [v["version"] for v in body["versions"]] == ["1.0.0", "1.0.1"]
    assert [v["status"] for v in body["versions"]] == ["retired", "production"]
    back = Registry(root).rollback()
    assert back.version == "1.0.0" and os.readlink(link) == "packages/a"
    again = Registry(root)
    assert again.production().version == "1.0.0" and again.get("1.0.1").status == "retired"
    with pytest.raises(RegistryError, match=r"nothing to roll back to: production has had only 1 version\(s\)"):
        again.rollback()


def test_refused_promotion_and_force(tmp_path, tiny_package, taxonomy):
    items, y, prod = gate_set(taxonomy)
    reg = Registry(tmp_path / "reg")
    reg.add("1.0.0", tiny_package, m(-0.2))
    reg.promote("1.0.0")
    reg.add("1.0.1", tiny_package, m(-0.3), note="loop")
    refused = reg.promote("1.0.1", gate_examples=items, scorer=lambda package: (lambda texts: prod))
    assert not refused.passed and reg.get("1.0.1").status == "rejected" and reg.production().version == "1.0.0"
    recorded = reg.get("1.0.1").gate
    assert recorded["passed"] is False and recorded["reasons"] == refused.reasons and recorded["utility_delta"] == 0.0
    assert recorded["n_items"] == len(items) and set(recorded["auprc_deltas"]) == set(taxonomy.names)
    assert json.loads((reg.root / "registry.json").read_text())["versions"][1]["gate"] == recorded
    forced = reg.promote("1.0.1", force=True)
    assert not forced.passed and reg.production().version == "1.0.1" and reg.get("1.0.0").status == "retired"
    assert reg.get("1.0.1").note == "loop; promoted with --force over the gate"


def test_a_damaged_registry_file_is_an_error(tmp_path):
    (tmp_path / "registry.json").write_text('{"versions": [{"version": "1"}]}')
    with pytest.raises(RegistryError, match="registry.json: not a valid registry"):
        Registry(tmp_path)


def test_listing_rows_and_refusals(tmp_path, tiny_package):
    reg = Registry(tmp_path / "reg")
    assert listing(reg)[0].title.startswith("production: (none)")
    reg.add("1.0.0", tiny_package, {**m(-0.25), "macro_auprc": 0.61234})
    reg.promote("1.0.0")
    reg.add("1.0.1", tiny_package, {**m(-0.5), "macro_auprc": 0.6}, parent="1.0.0")
    reg.promote("1.0.1")  # no gate split given: refused
    table, refused = listing(reg)
    assert table.title == f"production: 1.0.0  ({reg.root})" and table.title_justify == "left"
    assert [c.header for c in table.columns] == ["version", "status", "parent", "created", "AUPRC", "utility", "gate"]
    assert [c.justify for c in table.columns] == ["left", "left", "left", "left", "right", "right", "left"]
    assert all(c.no_wrap for c in table.columns)
    rows = list(zip(*[list(c._cells) for c in table.columns]))
    day = reg.get("1.0.0").created[:10]
    assert rows == [("1.0.0 *", "production", "", day, "0.612", "-0.250", "passed"),
                    ("1.0.1", "rejected", "1.0.0", day, "0.600", "-0.500", "refused")]
    assert refused == ["1.0.1 refused: no gate split to compare on (the datasets were not found; pass --data-dir): the gate "
                       "never falls back to the test split"]


def test_the_gate_scores_exactly_the_gate_texts_with_both_packages_and_its_bound(tmp_path, tiny_package, taxonomy):
    items, y, prod = gate_set(taxonomy, n=800)
    cand = prod.copy()
    hate = taxonomy.names.index("hate")
    cand[:, hate] = np.where(y[:, hate] == 1, prod[:, hate] * 0.97, prod[:, hate])  # hate's AUPRC falls a little
    a, b = _pkg(tmp_path, "a", tiny_package), _pkg(tmp_path, "b", tiny_package)
    calls = []

    def scorer(package):
        def score(texts):
            calls.append((package.name, list(texts)))
            return {"a": prod, "b": cand}[package.name]
        return score

    reg = Registry(tmp_path / "reg")
    reg.add("1", a, m(-0.3))
    reg.promote("1")
    reg.add("2", b, m(-0.3))
    strict = reg.compare(reg.get("2"), reg.get("1"), items, 0.0, scorer)
    assert sorted(calls) == [("a", [e.text for e in items]), ("b", [e.text for e in items])]
    loose = reg.compare(reg.get("2"), reg.get("1"), items, 0.5, scorer)
    assert any(r.startswith("hate:") for r in strict.reasons) and not any(r.startswith("hate:") for r in loose.reasons)
    result = reg.promote("2", max_auprc_drop=0.5, gate_examples=items, scorer=scorer)
    assert not any(r.startswith("hate:") for r in result.reasons) and result.auprc_deltas["hate"] < 0


def test_the_gate_refuses_models_of_different_taxonomies(tmp_path, tiny_package, taxonomy):
    from moderation.taxonomy import parse_taxonomy

    other = _pkg(tmp_path, "other", tiny_package)
    (other / "taxonomy.toml").write_text(parse_taxonomy({"category": [{"name": "scam", "definition": "fraud", "cost_fn": 1,
                                                                      "cost_fp": 1, "review_recall": 0.9,
                                                                      "block_precision": 0.9}]}).to_toml())
    items, y, prod = gate_set(taxonomy, n=50)
    reg = Registry(tmp_path / "reg")
    reg.add("1", tiny_package, m(-0.3))
    reg.promote("1")
    reg.add("2", other, m(-0.1))
    refused = reg.promote("2", gate_examples=items, scorer=lambda package: (lambda texts: prod))
    assert refused.passed is False and refused.reasons == [
        f"the candidate's categories ['scam'] differ from production's {taxonomy.names}"]
    assert reg.production().version == "1"


def test_add_package_measures_only_what_the_report_lacks(tmp_path, tiny_package, taxonomy):
    from moderation.runtime import Moderator
    from moderation.training.evaluate import utility_at
    from moderation.training.registry import add_package

    items = [Example(f"t{i}", f"a test text number {i}", "src", {c: float((i + k) % 5 == 0) for k, c in enumerate(taxonomy.names)},
                     split="test") for i in range(60)]
    asked, logged = [], []

    def test_examples(tax):
        asked.append(tax.names)
        return items

    reg = Registry(tmp_path / "reg")
    v = add_package(reg, tiny_package, None, None, test_examples, log=logged.append)
    assert asked == [] and logged == [] and v.version == json.loads((tiny_package / "manifest.json").read_text())["version"]
    old = _pkg(tmp_path, "old", tiny_package)
    report = json.loads((old / "export_report.json").read_text())
    del report["test"]["utility_cost_optimal"]
    (old / "export_report.json").write_text(json.dumps(report))
    measured = add_package(reg, old, None, "2.0.0", test_examples, log=logged.append)
    assert asked == [taxonomy.names] and logged == [f"measuring {old} on 60 test texts…"]
    mod = Moderator.load(old)
    y = np.array([[e.labels[c] for c in taxonomy.names] for e in items])
    probs = mod.score([e.text for e in items])
    assert measured.version == "2.0.0" and measured.metrics["n_items"] == 60
    assert measured.metrics["utility_review"] == pytest.approx(utility_at(probs, y, np.ones_like(y), mod.review_thresholds, taxonomy))
    assert Registry(reg.root).get("2.0.0").metrics == measured.metrics


def test_gate_intervals_are_the_documented_paired_bootstrap(taxonomy):
    from moderation.training.gate import item_utility

    items, y, prod = gate_set(taxonomy, n=300)
    cand = sharper(y, prod, np.random.default_rng(6))
    mask = np.ones_like(y)
    g = paired_gate(cand, prod, y, mask, taxonomy)  # seed 0, 500 resamples, 5th and 95th percentiles
    diff = item_utility(cand, y, mask, taxonomy) - item_utility(prod, y, mask, taxonomy)
    draws = np.random.default_rng(0).integers(0, len(y), size=(500, len(y)))
    assert g.utility_delta == pytest.approx(diff.mean())
    assert g.utility_interval == pytest.approx(list(np.percentile(diff[draws].mean(1), [5, 95])))
    assert g.utility_interval[0] <= g.utility_delta <= g.utility_interval[1]
    assert paired_gate(cand, prod, y, mask, taxonomy, seed=1).utility_interval != g.utility_interval


def test_gate_edges_masks_ties_and_exact_words(taxonomy):
    t = taxonomy.cost_optimal_thresholds()
    y = np.zeros((2, len(taxonomy)))
    y[:, 0] = 0.5  # a soft label of exactly 0.5 counts as positive
    at = np.tile(t, (2, 1))  # exactly at the cost-optimal threshold: flagged
    below = at - 0.01
    g = paired_gate(at, below, y, np.ones_like(y), taxonomy, min_positives=1)
    assert g.utility_delta == pytest.approx(taxonomy.cost_fn[0] - taxonomy.cost_fp[1:].sum())  # caught toxic, false flags elsewhere
    masked = np.zeros_like(y)
    masked[:, 0] = 1  # only toxic was labelled: the other false flags do not count
    assert paired_gate(at, below, y, masked, taxonomy, min_positives=1).utility_delta == pytest.approx(taxonomy.cost_fn[0])
    one = paired_gate(at[:1], below[:1], y[:1], masked[:1], taxonomy)
    assert one.n_items == 1 and one.reasons != ["the gate split is empty: nothing to compare the models on"]
    empty = paired_gate(at[:0], below[:0], y[:0], masked[:0], taxonomy)
    assert (empty.passed, empty.reasons) == (False, ["the gate split is empty: nothing to compare the models on"])


def test_a_noisy_auprc_fall_does_not_veto_and_a_real_one_vetoes_in_these_words(taxonomy):
    rng = np.random.default_rng(1)  # 25 hate positives in 600 items; the candidate re-draws hate's noise
    n = 600
    y = (rng.random((n, 7)) < 0.12).astype(float)
    y[:, 1] = 0
    y[rng.choice(n, 25, replace=False), 1] = 1
    prod = 1 / (1 + np.exp(-(3.0 * (y - 0.5) + rng.normal(0, 2.0, y.shape))))
    cand = prod.copy()
    cand[:, 1] = 1 / (1 + np.exp(-(3.0 * (y[:, 1] - 0.5) + rng.normal(0, 2.0, n))))
    noisy = paired_gate(cand, prod, y, np.ones_like(y), taxonomy)
    assert noisy.auprc_deltas["hate"] < -0.05 and noisy.auprc_intervals["hate"][1] >= 0  # fell, but within noise
    assert not any(r.startswith("hate") for r in noisy.reasons)
    # a real fall with exactly min_positives positives vetoes, after a category too thin to judge
    y[:, 0] = 0
    y[:3, 0] = 1  # toxic: 3 positives, cannot veto (and must not stop the others being checked)
    cand[:, 1] = rng.random(n) * 0.2 + 0.4 * (1 - y[:, 1])  # hate now ranks its positives last
    real = paired_gate(cand, prod, y, np.ones_like(y), taxonomy, min_positives=25)
    before, after = (weighted_average_precision(p[:, 1], y[:, 1].astype(int), np.ones(n))[0] for p in (prod, cand))
    lo, hi = real.auprc_intervals["hate"]
    assert f"hate: gate-split AUPRC fell {before - after:.4f} ({before:.4f} -> {after:.4f}), more than 0.01, and not by noise " \
           f"(90% interval of the change {lo:+.4f} to {hi:+.4f})" in real.reasons
    assert any(note.startswith("toxic: 3 positives") for note in real.notes)


def test_weighted_average_precision_edges():
    s = np.array([0.9, 0.8, 0.7, 0.6])
    y = np.array([1, 0, 1, 0])
    assert weighted_average_precision(s, y, np.array([1, 1, 1, 1]))[0] == pytest.approx((1 + 2 / 3) / 2)
    assert weighted_average_precision(s, y, np.array([0, 1, 1, 1]))[0] == pytest.approx(0.5)  # the top item not drawn
    assert weighted_average_precision(s, np.array([0, 0, 1, 0]), np.ones(4))[0] == pytest.approx(1 / 3)  # one positive
    rows = weighted_average_precision(s, y, np.array([[1, 1, 1, 1], [0, 1, 1, 1], [2, 0, 0, 1]]))
    assert rows == pytest.approx([(1 + 2 / 3) / 2, 0.5, 1.0])  # one AP per resample


def test_a_focused_gate_asks_better_where_reviewed_and_not_worse_elsewhere(taxonomy):
    items, y, prod = gate_set(taxonomy, n=3000)
    mask = np.ones_like(y)
    focus = np.zeros(len(y), bool)
    focus[:300] = True  # the reviewed platform: a tenth of the gate split
    better_there = prod.copy()
    better_there[focus] = sharper(y[focus], prod[focus], np.random.default_rng(4), noise=0.3)
    whole = paired_gate(better_there, prod, y, mask, taxonomy)
    focused = paired_gate(better_there, prod, y, mask, taxonomy, focus=focus)
    assert focused.passed and focused.focus["focus"]["n"] == 300 and focused.focus["rest"]["delta"] == 0
    assert focused.focus["focus"]["interval"][0] > 0 and focused.utility_delta == pytest.approx(whole.utility_delta)
    # the same gain there, bought with a loss everywhere else: refused, with the rest named
    worse_elsewhere = better_there.copy()
    worse_elsewhere[~focus] = np.clip(prod[~focus] + 0.3 * (0.5 - y[~focus]), 0, 1)  # pushed toward the wrong side
    refused = paired_gate(worse_elsewhere, prod, y, mask, taxonomy, focus=focus)
    assert not refused.passed and any(r.startswith("reviewer utility on the rest of the gate split (2700 items) may have fallen")
                                      for r in refused.reasons)
    # no gain on the platform: refused however clean the rest is
    same = paired_gate(prod, prod, y, mask, taxonomy, focus=focus)
    assert not same.passed and same.reasons[0].startswith("the reviewed platform's 300 gate items (toxic, hate, violence, sexual, "
                                                          "self_harm, misleading, spam) did not improve beyond noise")
    # a focus too small to judge falls back to the whole-split rule, and says so
    tiny = np.zeros(len(y), bool)
    tiny[:10] = True
    fallback = paired_gate(prod, prod, y, mask, taxonomy, focus=tiny)
    assert fallback.focus is None and "judged on the whole split" in fallback.notes[0]
    assert fallback.reasons[0].startswith("reviewer utility did not improve beyond noise")
    with pytest.raises(ValueError, match="focus has 5 entries"):
        paired_gate(prod, prod, y, mask, taxonomy, focus=focus[:5])


def test_the_focused_gate_judges_the_platform_on_what_its_annotators_labelled_and_takes_a_better_ranking(taxonomy):
    """With focus_categories, the reviewed platform must improve on those categories (utility, or ranking:
    each tested at 2.5%); its other categories join the rest. A better ranking with unchanged decisions passes;
    a shift of the scores (re-tuned thresholds, recalibration: the same ranking) cannot pass through ranking."""
    items, y, prod = gate_set(taxonomy, n=3000)
    mask = np.ones_like(y)
    focus = np.zeros(len(y), bool)
    focus[:400] = True
    toxic = np.array([c == "toxic" for c in taxonomy.names])
    t = taxonomy.cost_optimal_thresholds()[0]
    rng = np.random.default_rng(5)
    prod[focus, 0] = rng.random(400) * t * 0.9  # production: toxic below its threshold on every platform item
    ranked = prod.copy()
    ranked[focus, 0] = (0.5 * y[focus, 0] + 0.4 * rng.random(400)) * t * 0.9  # ranks positives first, still all below
    g = paired_gate(ranked, prod, y, mask, taxonomy, focus=focus, focus_categories=toxic)
    assert g.passed and g.focus["focus"]["delta"] == 0 and g.focus["focus"]["auprc_interval"][0] > 0
    assert g.focus["focus"]["categories"] == ["toxic"] and g.focus["rest"]["n"] == 3000  # the platform's other categories too
    shifted = prod.copy()
    shifted[focus, 0] = np.clip(prod[focus, 0] * 1.05, 0, 1)  # the same ranking
    refused = paired_gate(shifted, prod, y, mask, taxonomy, focus=focus, focus_categories=toxic)
    assert not refused.passed and refused.focus["focus"]["auprc_delta"] == 0
    assert refused.reasons[0].startswith("the reviewed platform's 400 gate items (toxic) did not improve beyond noise")
    # better on a category the platform's annotators did not label: not evidence of what they taught
    elsewhere = prod.copy()
    elsewhere[focus, 1] = sharper(y[focus, 1], prod[focus, 1], rng, noise=0.2)
    assert paired_gate(elsewhere, prod, y, mask, taxonomy, focus=focus).passed  # counted when every category is the focus
    assert not paired_gate(elsewhere, prod, y, mask, taxonomy, focus=focus, focus_categories=toxic).passed
    # the ranking improved, but the platform's decisions fell beyond noise: refused
    worse_decisions = ranked.copy()
    worse_decisions[focus & (y[:, 0] == 0), 0] = np.maximum(ranked[focus & (y[:, 0] == 0), 0], t + 0.01)  # every negative flagged
    worse_decisions[focus & (y[:, 0] == 1), 0] = 0.99
    fell = paired_gate(worse_decisions, prod, y, mask, taxonomy, focus=focus, focus_categories=toxic)
    assert not fell.passed and any(r.startswith("reviewer utility on the reviewed platform's 400 gate items fell") for r in fell.reasons)
    with pytest.raises(ValueError, match="focus_categories has 2 entries"):
        paired_gate(prod, prod, y, mask, taxonomy, focus=focus, focus_categories=toxic[:2])
