"""The behavioural suite: its construction (kept apart from the training templates) and the shipped
model's behaviour on it (a capability that collapses fails here, not in a user's first afternoon)."""

from collections import Counter

import numpy as np
import pytest

from moderation.behavioural import benign_prefix, cases, harmful_sentences, judge, position_cases, run_suite
from moderation.training.templates import training_templates

# The shipped model's pass rate per capability is recorded in benchmarks/results/generalization.json (the
# full suite, `benchmarks/generalization.py`). Here it is re-measured on the suite without the long position
# cases and must not fall more than this below the record: a capability that collapses fails CI, and a new
# model shipped without re-running the benchmark fails with a message saying so.
MAX_DROP = 0.1
# A harmful sentence inside benign text scores within this much of its score alone (probability).
POSITION_TOLERANCE = 0.15


def _grams(text, n=5):
    w = [x.lower().strip(".,?!'\"") for x in text.split()]
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def test_suite_size_and_capabilities():
    suite = cases()
    caps = Counter(c.capability for c in suite)
    assert len(suite) >= 300
    for cap in ("direct_threat", "veiled_threat", "self_harm_first_person", "self_harm_talk_about",
                "insult_no_identity", "identity_neutral_positive", "negated_hate", "counter_speech",
                "reclaimed_in_group", "figurative_homonym", "harmless_profanity", "obfuscated",
                "harm_after_200_benign_sentences", "spam", "misinformation"):
        assert caps[cap] >= 6, cap
    assert len({c.text for c in suite}) == len(suite)  # no case twice


def test_suite_shares_no_five_word_run_with_the_training_templates():
    train = set().union(*(_grams(e.text) for e in training_templates()))
    shared = [c.text for c in cases() if _grams(c.text) & train]
    assert not shared, shared[:5]


def test_judge_refuses_a_missed_or_a_forbidden_flag():
    case = cases()[0]  # a direct threat: violence must be flagged
    assert judge(case, {"violence"})
    assert not judge(case, set())
    about = next(c for c in cases() if c.capability == "self_harm_talk_about")
    assert judge(about, set()) and not judge(about, {"self_harm"})


@pytest.fixture(scope="module")
def shipped(default_package):
    from moderation.runtime import Moderator

    return Moderator.load(default_package)


def test_shipped_model_keeps_every_capability(shipped):
    import json
    from pathlib import Path

    results = json.loads((Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "generalization.json").read_text())
    recorded = next((m for m in results["models"].values() if m["version"] == shipped.version
                     and not m["path"].endswith("heldout")), None)
    assert recorded, f"no generalization results for the shipped model {shipped.version}: run benchmarks/generalization.py"
    suite = [c for c in cases() if not c.capability.startswith("harm_after")]
    report = run_suite(shipped, suite)
    for cap, r in report["capabilities"].items():
        before = recorded["behavioural"]["capabilities"][cap]["pass_rate"]
        assert r["pass_rate"] >= before - MAX_DROP, f"{cap}: {r['pass_rate']:.2f}, recorded {before:.2f}"
    # and the ones that matter most stay above a floor whatever was recorded
    for cap, floor in {"self_harm_talk_about": 0.9, "safe_everyday": 0.9, "figurative_homonym": 0.9,
                       "identity_hate": 0.9, "direct_threat": 0.6, "identity_neutral_positive": 0.7}.items():
        assert report["capabilities"][cap]["pass_rate"] >= floor, (cap, report["capabilities"][cap])


def test_harm_is_found_after_1_5_and_200_benign_sentences(shipped):
    sentences = harmful_sentences()
    assert len(sentences) >= 20
    alone = shipped.score([t for t, _ in sentences])
    cats = shipped.categories
    caught_alone = 0
    for i, (text, flag) in enumerate(sentences):
        caught_alone += all(alone[i, cats.index(c)] >= shipped.review_thresholds[cats.index(c)] for c in flag)
    assert caught_alone >= 18, f"only {caught_alone} of {len(sentences)} harmful sentences are flagged even alone"
    for n in (1, 5, 200):
        prefixed = shipped.score([f"{benign_prefix(n, n)} {t}" for t, _ in sentences])
        for i, (text, flag) in enumerate(sentences):
            for c in flag:
                j = cats.index(c)
                assert prefixed[i, j] >= alone[i, j] - POSITION_TOLERANCE, (n, text, prefixed[i, j], alone[i, j])
                if alone[i, j] >= shipped.review_thresholds[j]:  # flagged alone: flagged wherever it sits
                    assert prefixed[i, j] >= shipped.review_thresholds[j], f"{n} sentences hide {c} in {text!r}"
    # and a harmful sentence *after* a long text is scored (no window cap stops looking)
    assert len(position_cases(prefixes=(200,))) == len(sentences)


def test_benign_text_does_not_become_harmful_with_length(shipped):
    long_benign = benign_prefix(300, 7)
    res = shipped.moderate(long_benign)
    # harm categories only: `misleading` fires on some plain statements of events (a documented weakness)
    assert not any(res.categories[c] for c in ("toxic", "hate", "violence", "sexual", "self_harm")), res.scores


def test_check_command_reports_and_refuses_a_weak_model(tiny_package, tmp_path):
    from typer.testing import CliRunner

    import cli

    runner = CliRunner()
    ok = runner.invoke(cli.app, ["check", str(tiny_package), "--out", str(tmp_path / "r.json")])
    assert ok.exit_code == 0, ok.output
    assert "direct_threat" in ok.output and (tmp_path / "r.json").is_file()
    # a random tiny model cannot pass 90% of the threat cases: the gate refuses it
    refused = runner.invoke(cli.app, ["check", str(tiny_package), "--min-pass", "0.9"])
    assert refused.exit_code == 4 and "below 90%" in refused.output


def test_readme_python_example_does_what_readme_says(shipped):
    # README "Python API": the example threat is flagged, violence among its categories, and blocked
    r = shipped.moderate("I know where you live and I will hurt you")
    assert r.flagged and r.categories["violence"] and r.decision == "block", r.scores
    # pins 0.5.1's scores (0.945 / 0.765), so that a new model cannot ship under README's old numbers
    assert abs(r.scores["toxic"] - 0.945) < 0.02 and abs(r.scores["violence"] - 0.765) < 0.02, r.scores


def test_veiled_threat_templates_label_the_menace_and_not_its_look_alikes():
    """The veiled threats train `violence`; the same openings in everyday use train its absence."""
    texts: dict[str, list] = {}
    for e in training_templates():
        texts.setdefault(e.id.split(":")[1], []).append(e)
    assert len(texts["threat_veiled"]) >= 100 and len(texts["veiled_look_alikes"]) >= 100
    assert all(e.labels["violence"] == 1.0 for e in texts["threat_veiled"])
    assert all(e.labels["violence"] == 0.0 and e.labels["toxic"] == 0.0 for e in texts["veiled_look_alikes"])
    for opening in ("It'd be a real pity", "I know what time you", "Remember that I know where your"):
        assert any(e.text.startswith(opening) for e in texts["threat_veiled"])
        assert any(e.text.startswith(opening) for e in texts["veiled_look_alikes"])


def test_everyday_narratives_are_long_first_person_texts_labelled_harmless():
    """The hard negatives for the "long personal narrative = self-harm" drift: several sentences, no harm."""
    narratives = [e for e in training_templates() if e.id.startswith("template:everyday_narrative:")]
    assert len(narratives) == 300 and len({e.text for e in narratives}) == 300
    assert all(e.text.count(".") >= 6 for e in narratives)
    assert all(e.labels["self_harm"] == 0.0 and e.labels["toxic"] == 0.0 and e.labels["misleading"] == 0.0
               for e in narratives)


def test_candidate_template_families_share_no_five_word_run_with_the_suite():
    """Families under trial (template_candidates.py) obey the same separation as the shipped ones, and each
    harmful family comes with look-alikes labelled the other way (the label follows the act, not the surface)."""
    import random

    from moderation.training import template_candidates as extra
    from moderation.training.templates import _fill

    labels = {name: fam[0] for name, fam in extra.FAMILIES.items()}
    for harmful, look_alike, cat in [("spam_schemes", "spam_look_alikes", "spam"),
                                     ("misinformation_claims", "true_statements", "misleading"),
                                     ("threat_veiled_more", "veiled_more_look_alikes", "violence")]:
        assert labels[harmful][cat] == 1.0 and labels[look_alike][cat] == 0.0, harmful
    rng = random.Random(0)
    texts = [_fill(rng.choice(frames), slots, rng) for _, frames, slots in extra.FAMILIES.values() for _ in range(400)]
    texts += [_fill(f, {**extra.SELF_HARM_SLOTS, **_self_harm_slots()}, rng) for f in extra.SELF_HARM_FRAMES for _ in range(20)]
    assert not any("{" in t for t in texts)  # nested slots all filled
    train = set().union(*(_grams(t) for t in texts))
    shared = [c.text for c in cases() if _grams(c.text) & train]
    assert not shared, shared[:5]


def _self_harm_slots():
    from moderation.training.templates import FAMILIES

    return FAMILIES["self_harm_plans"][2]
