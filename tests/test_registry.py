"""moderation/training/registry.py on its own: the gate's exact rules and words, the registry file, the production
symlink, promotion, rollback and the listing people read."""

import json
import os
import shutil

import pytest

from moderation.training.registry import (Registry, RegistryError, _export_test_report, gate, has_utility, listing,
                                          metrics_from_report, package_metrics)

BASE = {"toxic": 0.9, "hate": 0.4}


def m(utility, **auprc):
    """Registry metrics whose gate split (what the gate reads) and test split (reporting) agree."""
    split = {"utility_cost_optimal": utility, "auprc": {**BASE, **auprc}, "macro_auprc": 0.5}
    return {**split, "gate": dict(split)}


def test_gate_first_version_and_exact_reasons():
    first = gate(m(-0.3), None)
    assert first.passed and first.reasons == ["first version: nothing to compare with"]
    same = gate(m(-0.3), m(-0.3))
    assert not same.passed and same.reasons == ["reviewer utility did not improve: -0.3000 vs -0.3000 in production"]
    worse = gate(m(-0.2, hate=0.38), m(-0.3), max_auprc_drop=0.01)
    assert not worse.passed and worse.reasons == ["hate: gate-split AUPRC fell 0.0200 (0.4000 -> 0.3800), more than 0.01"]
    assert worse.utility_delta == pytest.approx(0.1) and worse.auprc_deltas == pytest.approx({"toxic": 0.0, "hate": -0.02})
    edge = gate(m(-0.2, hate=0.39), m(-0.3), max_auprc_drop=0.01)  # a drop of exactly the bound is allowed
    assert edge.passed and edge.reasons == []
    unknown = gate(m(-0.2, hate=None), m(-0.3, toxic=None))
    assert unknown.passed and unknown.auprc_deltas == {}


def test_the_gate_reads_the_gate_split_never_the_test_split():
    better_on_test_only = {**m(-0.1, hate=0.9), "gate": m(-0.4)["gate"]}
    refused = gate(better_on_test_only, m(-0.3))
    assert not refused.passed and refused.reasons == ["reviewer utility did not improve: -0.4000 vs -0.3000 in production"]
    worse_on_test_only = {**m(-0.9, hate=0.1), "gate": m(-0.2)["gate"]}
    assert gate(worse_on_test_only, m(-0.3)).passed
    no_gate = {k: v for k, v in m(-0.1).items() if k != "gate"}
    for cand, prod, who in ((no_gate, m(-0.3), "the candidate"), (m(-0.1), no_gate, "production"),
                            (no_gate, no_gate, "the candidate and production")):
        r = gate(cand, prod)
        assert not r.passed and r.reasons[0].startswith(f"no gate-split metrics for {who}: the gate never falls back to the test")
    assert gate(no_gate, None).passed  # the first version has nothing to be compared with


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


def test_registry_file_symlink_promotion_and_rollback(tmp_path, tiny_package):
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
    assert reg.promote("1.0.1").passed
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


def test_refused_promotion_and_force(tmp_path, tiny_package):
    reg = Registry(tmp_path / "reg")
    reg.add("1.0.0", tiny_package, m(-0.2))
    reg.promote("1.0.0")
    reg.add("1.0.1", tiny_package, m(-0.3), note="loop")
    refused = reg.promote("1.0.1")
    assert not refused.passed and reg.get("1.0.1").status == "rejected" and reg.production().version == "1.0.0"
    assert reg.get("1.0.1").gate == {"passed": False, "reasons": refused.reasons, "utility_delta": pytest.approx(-0.1),
                                     "auprc_deltas": {"toxic": 0.0, "hate": 0.0}}
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
    reg.promote("1.0.1")
    table, refused = listing(reg)
    assert table.title == f"production: 1.0.0  ({reg.root})" and table.title_justify == "left"
    assert [c.header for c in table.columns] == ["version", "status", "parent", "created", "AUPRC", "utility", "gate"]
    assert [c.justify for c in table.columns] == ["left", "left", "left", "left", "right", "right", "left"]
    assert all(c.no_wrap for c in table.columns)
    rows = list(zip(*[list(c._cells) for c in table.columns]))
    day = reg.get("1.0.0").created[:10]
    assert rows == [("1.0.0 *", "production", "", day, "0.612", "-0.250", "passed"),
                    ("1.0.1", "rejected", "1.0.0", day, "0.600", "-0.500", "refused")]
    assert refused == ["1.0.1 refused: reviewer utility did not improve: -0.5000 vs -0.2500 in production"]


def test_promote_measures_missing_gate_metrics_on_the_gate_split_only(tmp_path, tiny_package, small_examples):
    reg = Registry(tmp_path / "reg")
    no_gate = {k: v for k, v in m(-0.3).items() if k != "gate"}
    reg.add("1.0.0", tiny_package, dict(no_gate))
    reg.promote("1.0.0")
    reg.add("1.0.1", tiny_package, dict(no_gate))
    refused = reg.promote("1.0.1")  # no gate split at hand: refused, never judged on the test metrics
    assert not refused.passed and refused.reasons[0].startswith("no gate-split metrics for the candidate and production")
    reg.add("1.0.2", tiny_package, dict(no_gate))
    same = reg.promote("1.0.2", gate_examples=small_examples["gate"])
    measured = Registry(reg.root).get("1.0.0").metrics["gate"]  # measured once, and saved
    assert measured["n_items"] == len(small_examples["gate"]) and reg.get("1.0.2").metrics["gate"] == measured
    assert not same.passed and same.reasons[0].startswith("reviewer utility did not improve")  # the same model gains nothing
