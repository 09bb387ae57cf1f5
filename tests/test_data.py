"""The loaders on the real files in ../shared/datasets."""

from collections import Counter, defaultdict

import numpy as np
import pytest

from moderation.training.data import (
    LOADERS,
    SOURCE_TABLE,
    DataError,
    label_matrix,
    load_examples,
    normalise_for_dedup,
    resolve_data_dir,
    split_of,
)
from tests.conftest import data_dir

# Rows each loader must return from the files as shipped (before cross-source deduplication).
EXPECTED_ROWS = {
    "davidson_hate_offensive": 24783, "ethos": 998, "convabuse": 4185, "surge_toxicity": 1000,
    "jigsaw_toxic_sample": 101, "constraint_covid_fakenews": 10700, "liar": 12836, "sms_spam_collection": 5574,
    "suicide_severity_reddit": 500,
    # the sources added with issue 13 (counts from each folder's README)
    "edos_sexism": 20000, "gab_hate_corpus": 27546, "hatemoji_build": 5912,
    "hatexplain_majority_mbib": 20148 - 919,  # no-majority posts dropped
    "olid_v1": 13240 + 860, "toxigen_statements": 769, "tweeteval_hate": 12970, "youtube_spam_collection": 1956,
}

# (positives, labelled) per category, from the READMEs' label counts and the mapping in SOURCE_TABLE.
EXPECTED_MASKS = {
    "edos_sexism": {"hate": (4854, 20000), "violence": (443, 4854), "toxic": (3624, 4854), "self_harm": (0, 0)},
    "gab_hate_corpus": {"hate": (2348, 27546), "violence": (155, 27546), "misleading": (0, 0)},
    "hatemoji_build": {"hate": (2965, 5912), "violence": (203, 2965), "toxic": (2965, 2965)},
    "hatexplain_majority_mbib": {"hate": (5935, 19229), "toxic": (5935 + 5480, 19229)},
    "olid_v1": {"toxic": (2407 + 1074 + 395 + 524 + 240, 14100), "hate": (0, 8840 + 620)},
    "toxigen_statements": {"hate": (424, 769), "toxic": (0, 345), "self_harm": (0, 345)},
    "tweeteval_hate": {"hate": (3783 + 427 + 1252, 12970), "toxic": (0, 0)},
    "youtube_spam_collection": {"spam": (1005, 1956), "misleading": (0, 951), "toxic": (0, 0)},
}


@pytest.mark.parametrize("source", sorted(EXPECTED_MASKS))
def test_new_sources_label_and_mask_what_their_annotators_judged(source):
    rows = LOADERS[source](resolve_data_dir(data_dir()))
    for c, (pos, known) in EXPECTED_MASKS[source].items():
        got = (sum(1 for e in rows if e.labels[c] is not None and e.labels[c] >= 0.5),
               sum(1 for e in rows if e.labels[c] is not None))
        assert got == (pos, known), f"{source}/{c}: (positives, labelled) {got}, expected {(pos, known)}"


def test_identity_groups_and_perturbation_pairs(examples):
    tox = [e for e in examples if e.source == "toxigen_statements"]
    assert {g for e in tox for g in e.identities} >= {"muslim", "black", "jewish", "women", "lgbtq", "immigrant"}
    assert all(e.identities == ("women",) for e in examples if e.source == "edos_sexism")
    # a Hatemoji entry and its minimal edit never sit in different splits
    root = resolve_data_dir(data_dir())
    split = {normalise_for_dedup(e.text): e.split for e in examples}
    crossing = 0
    pairs = defaultdict(set)
    for e in LOADERS["hatemoji_build"](root):
        pairs[e.group].add(split[normalise_for_dedup(e.text)])
    crossing = sum(1 for s in pairs.values() if len(s) > 1)
    # an entry that duplicates a text of another pair is merged into it and takes that pair's split, so a few cross
    assert len(pairs) > 2500 and crossing / len(pairs) < 0.02  # 42 of 2,956 today


@pytest.mark.parametrize("source", list(LOADERS))
def test_each_loader_reads_the_real_files(source, taxonomy):
    root = resolve_data_dir(data_dir())
    rows = LOADERS[source](root)
    if source in EXPECTED_ROWS:
        assert len(rows) == EXPECTED_ROWS[source]
    else:  # toxic_spans: 16,100 posts less the ones without a usable rating and the 357-rater quiz post
        assert 15_500 <= len(rows) <= 16_100
    rule = SOURCE_TABLE[source]
    for ex in rows:
        assert set(ex.labels) == set(taxonomy.names)
        for c, v in ex.labels.items():
            assert v is None or 0.0 <= v <= 1.0
            if c in rule.assumed_negative:
                assert v == 0.0
            if c not in rule.labels and c not in rule.assumed_negative and c not in rule.negative_if_clean:
                assert v is None, f"{source} says something about {c} that SOURCE_TABLE does not allow"
    # every judged category has positives somewhere
    for c in rule.labels:
        assert any((ex.labels[c] or 0) >= 0.5 for ex in rows), f"{source}: no positive {c}"


def test_soft_labels_and_annotators_are_kept():
    root = resolve_data_dir(data_dir())
    dav = LOADERS["davidson_hate_offensive"](root)
    assert any(0 < e.labels["toxic"] < 1 for e in dav)  # vote fractions, not majority flags
    e = dav[0]
    assert len(e.annotators) >= 3 and sum(a["toxic"] for _, a in e.annotators) / len(e.annotators) == e.labels["toxic"]
    conv = LOADERS["convabuse"](root)
    assert all(e.annotators for e in conv)
    assert any(e.labels["sexual"] and e.labels["sexual"] > 0 for e in conv)
    spans = LOADERS["toxic_spans"](root)
    assert all(1 <= len(e.annotators) <= 10 for e in spans) and np.mean([len(e.annotators) for e in spans]) > 3
    assert len({a for e in spans for a, _ in e.annotators}) > 1000  # real worker ids


def test_liar_grades_and_covid_urls():
    root = resolve_data_dir(data_dir())
    liar = LOADERS["liar"](root)
    assert set(e.labels["misleading"] for e in liar) == {0.0, 0.2, 0.4, 0.6, 0.8, 1.0}
    covid = LOADERS["constraint_covid_fakenews"](root)
    assert not any("http" in e.text for e in covid)


def test_suicide_is_one_example_per_user():
    rows = LOADERS["suicide_severity_reddit"](resolve_data_dir(data_dir()))
    assert len({e.group for e in rows}) == 500
    assert Counter(e.labels["self_harm"] for e in rows) == {1.0: 171 + 77 + 45, 0.5: 99, 0.0: 108}


def test_duplicates_never_cross_splits(examples):
    split_of_key = defaultdict(set)
    for e in examples:
        # emoji-only texts normalise to "": the loader then keys them by their raw text, and so do we
        split_of_key[normalise_for_dedup(e.text) or e.text].add(e.split)
    crossing = [k for k, s in split_of_key.items() if len(s) > 1]
    assert not crossing
    # the SMS set has ~400 duplicate texts: they are merged, not kept
    sms = [e for e in examples if e.source == "sms_spam_collection"]
    assert 5000 <= len(sms) <= 5171


def test_splits_are_deterministic_and_proportioned(examples, taxonomy):
    again = load_examples(data_dir(), sources=["sms_spam_collection"], taxonomy=taxonomy)
    first = {e.id: e.split for e in examples if e.source == "sms_spam_collection"}
    common = {e.id for e in again} & set(first)
    assert len(common) > 5000
    assert {e.id: e.split for e in again if e.id in common} == {k: first[k] for k in common}
    share = Counter(e.split for e in examples)
    assert 0.78 < share["train"] / len(examples) < 0.82
    assert split_of("abc") == split_of("abc") and split_of("abc", seed=1) in ("train", "validation", "test")


def test_label_matrix_masks_unknowns(examples, taxonomy):
    y, m = label_matrix(examples[:500], taxonomy.names)
    assert y.shape == m.shape == (500, 7)
    assert np.all(y[m == 0] == 0)
    assert 0 < m.mean() < 1


def test_missing_data_dir_says_where(tmp_path):
    with pytest.raises(DataError, match="data directory not found: .*nowhere.*MODERATION_DATA_DIR"):
        resolve_data_dir(tmp_path / "nowhere")


def test_unknown_source_is_rejected():
    with pytest.raises(DataError, match="unknown source"):
        load_examples(data_dir(), sources=["reddit_everything"])


def test_no_semeval_span_test_post_reaches_any_split():
    """The SemEval-2021 Task 5 test posts are also toxic_spans posts: they are reserved for the span benchmark,
    so no training, validation, gate or test example may hold one (case, spacing and punctuation aside)."""
    from moderation.training.data import load_examples, normalise_for_dedup, reserved_benchmark_keys, semeval_span_test

    root = resolve_data_dir(data_dir())
    test_posts = semeval_span_test(root)
    assert len(test_posts) == 2000 and sum(1 for _, gold in test_posts if not gold) == 394
    reserved = reserved_benchmark_keys(root)
    assert len(reserved) >= 1990
    raw = {normalise_for_dedup(e.text) for e in LOADERS["toxic_spans"](root)}
    assert len(raw & reserved) >= 1990  # the loader alone would let them in: the guard is what keeps them out
    kept = load_examples(root, sources=["toxic_spans", "jigsaw_toxic_sample"])
    assert not {normalise_for_dedup(e.text) for e in kept} & reserved
    assert len(kept) >= len(raw) - len(raw & reserved)


def test_semeval_span_files_are_read_by_name_and_an_unknown_one_is_refused():
    """The train file (gzipped) reads like the others; its counts are the README's (485 empty-gold posts)."""
    from moderation.training.data import semeval_spans

    root = resolve_data_dir(data_dir())
    train = semeval_spans(root, "train")
    assert len(train) == 7939 and sum(1 for _, gold in train if not gold) == 485
    assert all(0 <= i < len(text) for text, gold in train for i in gold)
    with pytest.raises(DataError, match="SemEval span file must be one of .*got 'dev'"):
        semeval_spans(root, "dev")


def test_span_head_validates_on_the_official_trial_file_and_trains_on_neither_trial_nor_test():
    """Validation is the trial file row for row (so a head's trial F1 is the benchmark's own number); no
    training post shares its text with a trial or test post."""
    from moderation.training.data import normalise_for_dedup, reserved_benchmark_keys, semeval_spans
    from moderation.training.spans import load_span_posts

    root = resolve_data_dir(data_dir())
    posts = load_span_posts(root)
    trial = semeval_spans(root, "trial")
    val = [p for p in posts if p.split == "validation"]
    assert [(p.text, sorted(p.semeval_gold)) for p in val] == [(t, sorted(g)) for t, g in trial]
    train_keys = {normalise_for_dedup(p.text) for p in posts if p.split == "train"}
    assert len(train_keys) > 12000 and all(p.raters for p in posts if p.split == "train")
    assert not train_keys & {normalise_for_dedup(t) for t, _ in trial}
    assert not train_keys & reserved_benchmark_keys(root)
