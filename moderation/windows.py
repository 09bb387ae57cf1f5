"""Tokenization into overlapping windows, shared by training and the torch-free runtime.

A long text is cut into windows of `max_length` tokens that overlap by `stride` tokens, and (SENTENCES_ALL)
every text of two or more sentences also has each sentence scored on its own; the text's score is the max
over all of them. So a threat, a self-harm statement or a slur scores as it would alone wherever it sits:
after one benign sentence or after two hundred. Why sentences and not only the model: the encoder reads
every token in the light of the whole window, so benign context pulls a harmful sentence's score down even
with max pooling over tokens (measured on the 0.4.0 checkpoint, windows only: 22 harmful sentences kept
their category after 1 benign sentence in 9 cases, after 5 in 4, after 200 in none). There is no cap on
windows or sentences: `Moderator(max_chars=)` bounds the work one item can take, with an error rather than
a silent stop. The price is tokens: each multi-sentence text is read about twice (benchmarks/throughput.py).

Packages before 0.4 (mean-pooled) used SENTENCES_LONG: sentences only for texts longer than one window,
at most MAX_SEGMENTS of them; they keep it, so their scores do not change.
Batches are built from windows sorted by length and padded to the batch's longest.
Imports only `tokenizers` and numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from moderation.normalize import Normalizer


def load_tokenizer(path: str | Path, max_length: int, stride: int) -> Tokenizer:
    if stride >= max_length - 2:
        raise ValueError(f"stride ({stride}) must be smaller than max_length - 2 ({max_length - 2})")
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length, stride=stride, strategy="longest_first")
    return tok


@dataclass
class Windows:
    ids: list[np.ndarray]  # one int64 array per window, special tokens included
    owner: np.ndarray  # owner[i] = index of the text window i came from
    # with offsets=True: per window, (T, 2) character ranges of its tokens in the ORIGINAL text ((0, 0): special)
    char_ranges: list[np.ndarray] | None = None
    # windows [0, n_text_windows) read the texts themselves; those after are sentence segments
    n_text_windows: int | None = None


MAX_SEGMENTS = 64  # SENTENCES_LONG only: sentences scored per long text (the pre-0.4, capped behaviour)
SENTENCES_NONE, SENTENCES_LONG, SENTENCES_ALL = "none", "long", "all"
SENTENCE_MODES = (SENTENCES_NONE, SENTENCES_LONG, SENTENCES_ALL)

SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?…])\s+|\n+")


def sentence_mode(pooling: str) -> str:
    """Mean-pooled (pre-0.4) models scored sentences of long texts only; max-pooled ones every sentence."""
    return SENTENCES_LONG if pooling == "mean" else SENTENCES_ALL


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_ranges(text)]


def sentence_ranges(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-empty sentence, surrounding whitespace left out."""
    out, start = [], 0
    for m in [*SENTENCE_BOUNDARY.finditer(text), None]:
        end = m.start() if m else len(text)
        piece = text[start:end]
        stripped = piece.strip()
        if stripped:
            a = start + (len(piece) - len(piece.lstrip()))
            out.append((a, a + len(stripped)))
        if m:
            start = m.end()
    return out


_NORMALIZERS: dict[int, tuple[Tokenizer, Normalizer]] = {}  # keeps the tokenizer alive so its id stays unique


def normalizer_for(tokenizer: Tokenizer) -> Normalizer:
    entry = _NORMALIZERS.get(id(tokenizer))
    if entry is None or entry[0] is not tokenizer:
        entry = _NORMALIZERS[id(tokenizer)] = (tokenizer, Normalizer.for_tokenizer(tokenizer))
    return entry[1]


def encode_windows(tokenizer: Tokenizer, texts: list[str], max_windows: int | None = None,
                   sentence_segments: str = SENTENCES_ALL, normalize: bool = True, offsets: bool = False) -> Windows:
    """Every text becomes one or more windows (the tokenizer's overflow gives the overlapping rest), plus
    one segment per sentence when it has two or more (SENTENCES_ALL; see the module docstring).

    max_windows=1 means exactly one window per text and no sentences (training indexes them by text);
    None means all windows. Texts are first de-obfuscated (moderation/normalize.py) unless `normalize` is False.
    offsets=True also gives each token's character range in the original text (Windows.char_ranges).
    """
    if sentence_segments not in SENTENCE_MODES:
        raise ValueError(f"sentence_segments must be one of {SENTENCE_MODES}, got {sentence_segments!r}")
    sources: list[tuple[np.ndarray, np.ndarray]] = []  # per text: normalised char -> original [start, end)
    if offsets:
        from moderation.spans import token_char_ranges

        fold = normalizer_for(tokenizer) if normalize else None
        folded = []
        for t in texts:
            if fold is None:
                idx = np.arange(len(t), dtype=np.int64)
                norm, starts, ends = t, idx, idx + 1
            else:
                norm, starts, ends = fold.with_offsets(t)
            folded.append(norm)
            sources.append((starts, ends))
        texts = folded
    elif normalize:
        fold = normalizer_for(tokenizer)
        texts = [fold(t) for t in texts]
    mode = SENTENCES_NONE if max_windows == 1 else sentence_segments
    ids, owner, ranges = [], [], []
    multi = []
    for i, enc in enumerate(tokenizer.encode_batch(texts, add_special_tokens=True)):
        parts = [enc, *enc.overflowing]
        if max_windows is not None:
            parts = parts[:max_windows]
        for part in parts:
            ids.append(np.asarray(part.ids, dtype=np.int64))
            owner.append(i)
            if offsets:
                ranges.append(token_char_ranges(part.offsets, part.special_tokens_mask, *sources[i]))
        if mode == SENTENCES_ALL or (mode == SENTENCES_LONG and enc.overflowing):
            multi.append(i)
    n_text_windows = len(ids)
    for i in multi:
        spans = sentence_ranges(texts[i])
        if len(spans) < 2:
            continue
        if mode == SENTENCES_LONG:
            spans = spans[:MAX_SEGMENTS]
        for (a, b), enc in zip(spans, tokenizer.encode_batch([texts[i][a:b] for a, b in spans], add_special_tokens=True)):
            ids.append(np.asarray(enc.ids, dtype=np.int64))  # a long sentence: its first window (the rest is in the windows above)
            owner.append(i)
            if offsets:
                ranges.append(token_char_ranges(enc.offsets, enc.special_tokens_mask, *sources[i], shift=a))
    return Windows(ids=ids, owner=np.asarray(owner, dtype=np.int64), char_ranges=ranges if offsets else None,
                   n_text_windows=n_text_windows)


def length_sorted_batches(windows: Windows, batch_size: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Window indices grouped into batches of similar length (less padding, same results).

    max_tokens caps rows x longest row, so a batch of 256-token windows holds fewer rows than one of
    tweets: memory for attention grows with rows x length^2, and long windows gain nothing from width."""
    lengths = np.array([len(w) for w in windows.ids])
    order = np.argsort(lengths, kind="stable")
    if max_tokens is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and end - start < batch_size and (end - start + 1) * lengths[order[end]] <= max_tokens:
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def pad_batch(windows: Windows, index: np.ndarray, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), padded to the longest window in this batch."""
    longest = max(len(windows.ids[i]) for i in index)
    input_ids = np.full((len(index), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(index), longest), dtype=np.int64)
    for row, i in enumerate(index):
        w = windows.ids[i]
        input_ids[row, : len(w)] = w
        mask[row, : len(w)] = 1
    return input_ids, mask


def max_over_windows(window_scores: np.ndarray, owner: np.ndarray, n_texts: int) -> np.ndarray:
    """Per-text score = the max over that text's windows."""
    out = np.full((n_texts, window_scores.shape[1]), -np.inf, dtype=window_scores.dtype)
    np.maximum.at(out, owner, window_scores)
    return out
