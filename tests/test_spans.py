"""Span offsets: every span points into the text the user passed, through normalisation, windows and
sentence segments, and on non-ASCII text."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moderation.spans import Span, char_f1, merge_spans, spans_from_token_probs
from moderation.windows import SENTENCE_BOUNDARY, encode_windows, load_tokenizer, normalizer_for, sentences


@pytest.fixture(scope="module")
def tokenizer():
    from moderation.training.policy import base_model_dir

    return load_tokenizer(base_model_dir() / "tokenizer.json", 16, 4)  # short windows: long texts split often


# Pieces that exercise every normalisation step, plus plain and non-Latin words.
PIECES = ["idiot", "1d10t", "id\u200biot", "іdіоt", "𝐢𝐝𝐢𝐨𝐭", "ｉｄｉｏｔ", "i d i o t", "y o u i d i o t", "e\u0301cole",
          "naïve", "Привет", "東京", "😀", "you", "are", "an", "10am", "a b c", "stupid", "f*ck", "don't", ".", "!", "?",
          "\n", "  ", "\u00ad", "$h!t", "\ud800"]
texts = st.lists(st.sampled_from(PIECES), max_size=30).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_offsets_give_the_same_text_and_point_into_the_original(tokenizer, text):
    fold = normalizer_for(tokenizer)
    norm, starts, ends = fold.with_offsets(text)
    assert norm == fold(text)
    assert len(starts) == len(ends) == len(norm)
    assert np.all(starts >= 0) and np.all(ends <= len(text)) and np.all(starts <= ends)
    assert np.all(np.diff(starts) >= 0)  # order is kept: a span never runs backwards


@pytest.mark.parametrize("original", ["1d10t", "id\u200biot", "іdіоt", "𝐢𝐝𝐢𝐨𝐭", "ｉｄｉｏｔ", "i d i o t"])
def test_an_obfuscated_word_maps_back_to_all_of_its_characters(tokenizer, original):
    text = f"hey, {original} over there"
    norm, starts, ends = normalizer_for(tokenizer).with_offsets(text)
    a = norm.index("idiot")
    assert text[starts[a] : ends[a + 4]] == original


@settings(max_examples=200, deadline=None)
@given(texts)
def test_sentences_are_the_old_split(text):
    assert sentences(text) == [s for s in (p.strip() for p in SENTENCE_BOUNDARY.split(text)) if s]


@settings(max_examples=150, deadline=None)
@given(texts)
def test_window_tokens_point_at_their_own_characters(tokenizer, text):
    plain = encode_windows(tokenizer, [text, "short one. and another!"])
    tracked = encode_windows(tokenizer, [text, "short one. and another!"], offsets=True)
    assert [w.tolist() for w in plain.ids] == [w.tolist() for w in tracked.ids]  # offsets change nothing scored
    assert len(tracked.char_ranges) == len(tracked.ids)
    fold = normalizer_for(tokenizer)
    for ids, ranges, owner in zip(tracked.ids, tracked.char_ranges, tracked.owner):
        source = [text, "short one. and another!"][owner]
        for token_id, (a, b) in zip(ids, ranges):
            token = tokenizer.id_to_token(int(token_id))
            if token.startswith("[") and token.endswith("]"):
                continue
            piece = source[a:b]
            assert 0 <= a < b <= len(source)
            folded = fold(piece).lower()
            word = token.removeprefix("##")
            if word.isascii() and word.isalpha() and folded.isascii():
                assert word in re.sub(r"[^a-z]", "", folded) or folded.replace(" ", "") in word, (token, piece)


def test_spans_widen_to_words_and_join_across_spaces():
    text = "you stupid ignorant idiots, really"
    # tokens: "stupid", "ignorant", "idiot" + "##s"; only "idiot" and "stupid"/"ignorant" pass
    ranges = np.array([[0, 3], [4, 10], [11, 19], [20, 25], [25, 26], [28, 34]])
    probs = np.array([0.1, 0.9, 0.6, 0.8, 0.2, 0.1])
    assert spans_from_token_probs(text, ranges, probs, 0.5) == [(4, 26, 0.9)]
    assert text[4:26] == "stupid ignorant idiots"
    # a comma between two picked words keeps them apart
    probs = np.array([0.1, 0.1, 0.1, 0.8, 0.1, 0.7])
    assert [text[a:b] for a, b, _ in spans_from_token_probs(text, ranges, probs, 0.5)] == ["idiots", "really"]
    assert spans_from_token_probs(text, ranges, np.zeros(6), 0.5) == []


def test_overlapping_windows_give_one_span():
    spans = [Span(4, 10, "toxic", 0.7, "span_head"), Span(4, 10, "toxic", 0.9, "span_head"),
             Span(8, 14, "toxic", 0.6, "span_head"), Span(4, 10, "hate", 0.8, "span_head")]
    assert merge_spans(spans) == [Span(4, 10, "hate", 0.8, "span_head"), Span(4, 14, "toxic", 0.9, "span_head")]


def test_char_f1_is_semeval_task5s_per_post_score():
    assert char_f1(set(), set()) == 1.0
    assert char_f1({1}, set()) == 0.0 and char_f1(set(), {1}) == 0.0
    assert char_f1({1, 2}, {2, 3}) == pytest.approx(0.5)
    assert char_f1({1, 2, 3, 4}, {1, 2}) == pytest.approx(2 * 0.5 * 1.0 / 1.5)
