"""Segmentation: every sentence of a multi-sentence text is scored alone (0.4 packages), nothing is capped,
and pre-0.4 packages keep their old segmentation so their scores do not move."""

import numpy as np
import pytest

from moderation.training.policy import base_model_dir
from moderation.windows import MAX_SEGMENTS, SENTENCES_ALL, SENTENCES_LONG, SENTENCES_NONE, encode_windows, load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(base_model_dir() / "tokenizer.json", 64, 16)


def test_every_sentence_of_a_short_text_is_a_segment(tok):
    w = encode_windows(tok, ["The weather is nice. I will hurt you.", "One sentence only."], sentence_segments=SENTENCES_ALL)
    assert list(w.owner) == [0, 1, 0, 0]  # text 0: its window + 2 sentences; text 1: its window
    threat = tok.encode("I will hurt you.").ids
    assert any(np.array_equal(ids, threat) for ids in w.ids)  # the sentence exactly as it would be alone


def test_no_cap_on_windows_or_sentences(tok):
    long = " ".join(f"Sentence number {i} is here, between the others, quite long." for i in range(300))
    w = encode_windows(tok, [long], sentence_segments=SENTENCES_ALL)
    n_windows = 1 + len(tok.encode(long).overflowing)
    assert len(w.owner) == n_windows + 300 and n_windows > MAX_SEGMENTS  # 0.3.0 stopped after 64


def test_old_packages_keep_long_text_sentences_only_and_capped(tok):
    short = encode_windows(tok, ["The weather is nice. I will hurt you."], sentence_segments=SENTENCES_LONG)
    assert len(short.owner) == 1
    long = " ".join(f"Sentence number {i} is here." for i in range(300))
    w = encode_windows(tok, [long], sentence_segments=SENTENCES_LONG)
    assert len(w.owner) == 1 + len(tok.encode(long).overflowing) + MAX_SEGMENTS


def test_one_window_per_text_for_training_and_bad_mode_refused(tok):
    w = encode_windows(tok, ["A. B. C.", "x " * 500], max_windows=1)
    assert list(w.owner) == [0, 1]
    assert len(encode_windows(tok, ["A b c. D e f."], sentence_segments=SENTENCES_NONE).owner) == 1
    with pytest.raises(ValueError, match="sentence_segments"):
        encode_windows(tok, ["x"], sentence_segments="some")
