"""What a supervised run may see: held-out sources leave every split, test never arrives, context copies
keep their labels, thresholds follow their stated rules, and calibration is fitted to binarised labels."""

import numpy as np
import pytest

from moderation.training.augment import benign_sentences, with_benign_context
from moderation.training.data import Example
from moderation.training.evaluate import BLOCK_FALLBACK, MIN_BAND, tune_thresholds
from moderation.training.training_set import TrainingSetConfig, build_training_set, fingerprint


def test_heldout_sources_leave_training_and_validation_and_test_never_arrives(examples):
    cfg = TrainingSetConfig(exclude_sources=("olid_v1", "youtube_spam_collection"), context_fraction=0.2,
                            templates_per_family=20)
    train, validation = build_training_set(examples, cfg)
    assert not {e.source for e in train + validation} & {"olid_v1", "youtube_spam_collection"}
    test_texts = {e.text for e in examples if e.split == "test"}
    assert all(e.split == "train" for e in train)
    assert all(e.split == "validation" for e in validation)
    # context copies are built from training texts only: no test or validation text inside any of them
    val_texts = {e.text for e in examples if e.split == "validation"}
    copies = [e for e in train if e.id.endswith("+context")]
    assert len(copies) > 1000
    # the context added around a training text (the copy minus its original) never carries a test text
    originals = {e.id: e.text for e in examples}
    added = [c.text.replace(originals[c.id.removesuffix("+context")], " ") for c in copies[:300]]
    long_test = sorted(t for t in test_texts if len(t) > 40)[:2000]  # sorted: the same texts in every run
    assert not any(t in a for a in added for t in long_test)
    assert not any(c.text in val_texts or c.text in test_texts for c in copies)
    assert any(e.source == "training_templates" for e in train)


def test_fingerprint_is_the_same_for_the_same_items_in_order_and_moves_with_a_label_or_the_order(examples):
    cfg = TrainingSetConfig(templates_per_family=20)
    train, _ = build_training_set(examples, cfg)
    again, _ = build_training_set(examples, cfg)
    assert fingerprint(train) == fingerprint(again) and len(fingerprint(train)) == 16
    flipped = train[0].labels | {"toxic": 1.0 - (train[0].labels["toxic"] or 0.0)}
    assert fingerprint([Example(train[0].id, train[0].text, train[0].source, flipped)] + train[1:]) != fingerprint(train)
    assert fingerprint(train[1:2] + train[:1] + train[2:]) != fingerprint(train)
    assert fingerprint(build_training_set(examples, TrainingSetConfig(templates_per_family=20, seed=1))[0]) != fingerprint(train)


def test_unknown_source_to_exclude_is_refused():
    with pytest.raises(ValueError, match="unknown source"):
        TrainingSetConfig(exclude_sources=("no_such_source",))


def _ex(i, text, **labels):
    full = {c: None for c in ("toxic", "hate", "violence", "sexual", "self_harm", "misleading", "spam")}
    full.update(labels)
    return Example(f"x:{i}", text, "src", full, split="train")


def test_context_copies_keep_labels_and_use_only_clean_sentences():
    clean = [_ex(i, f"The garden club met on day {i}. Everyone brought a cake to share with friends.",
                 toxic=0.0, hate=0.0, violence=0.0, spam=0.0) for i in range(50)]
    harmful = [_ex(100 + i, f"I will hurt you number {i}.", violence=1.0, toxic=1.0) for i in range(50)]
    pool = benign_sentences(clean + harmful)
    assert pool and not any("hurt" in s for s in pool)
    copies = with_benign_context(clean + harmful, fraction=1.0, seed=3)
    hurt = [c for c in copies if "hurt" in c.text]
    assert len(hurt) == 50
    for c in hurt:
        assert c.labels["violence"] == 1.0 and c.labels["toxic"] == 1.0 and c.labels["hate"] is None
        original = next(h.text for h in harmful if h.text in c.text)  # the original sits whole inside the copy
        added = c.text.replace(original, " ")
        assert len(c.text.split()) <= 85 and added.strip()
        assert "garden club" in added or "Everyone brought a cake" in added


def test_thresholds_always_leave_a_review_band_and_use_fallbacks(taxonomy):
    rng = np.random.default_rng(0)
    n = 4000
    rates = [0.4, 0.1, 0.01, 0.002, 0.02, 0.2, 0.05]
    y = (rng.random((n, 7)) < rates).astype(np.float32)
    p = np.clip(y * 0.5 + rng.random((n, 7)) * 0.5, 0, 1)
    p[:, 2] = rng.random(n) * 0.8  # violence: scores carry no signal, so precision 0.9 is never reached
    t = tune_thresholds(p, y, np.ones_like(y), taxonomy)
    floors = taxonomy.cost_optimal_thresholds()
    for c in range(7):
        assert t.review[c] + MIN_BAND - 1e-9 <= t.block[c] <= 0.99, taxonomy.names[c]
        assert abs(t.review[c] - min(floors[c], t.block[c] - MIN_BAND)) < 1e-9  # the cost threshold
        assert 0.0 < t.review[c] and t.block[c] < 1.0  # both decisions reachable
        assert isinstance(t.rules[c]["review_recall_met"], bool)
    assert "validation positives" in t.rules[3]["block_rule"]  # sexual, ~8 positives: fallback, not a noisy precision
    assert t.block[2] == BLOCK_FALLBACK and "fallback" in t.rules[2]["block_rule"]
