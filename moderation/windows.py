"""Tokenization into overlapping windows, shared by training and the torch-free runtime.

A long text is cut into windows of `max_length` tokens that overlap by `stride` tokens, and each of its
sentences is also scored on its own; the text's score is the max over all of them, so harm at the end of
a long post is neither truncated away nor diluted. (Sentences matter because the model mean-pools: a
16-token threat inside a 256-token window of garden-club news scored 0.002 for violence, alone 0.98.) Batches are built from windows sorted by length and padded to the batch's longest.
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


MAX_SEGMENTS = 64  # per text, for windows and for sentences alike: bounds the time one item can take

SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?…])\s+|\n+")


def sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in SENTENCE_BOUNDARY.split(text)) if s]


_NORMALIZERS: dict[int, tuple[Tokenizer, Normalizer]] = {}  # keeps the tokenizer alive so its id stays unique


def normalizer_for(tokenizer: Tokenizer) -> Normalizer:
    entry = _NORMALIZERS.get(id(tokenizer))
    if entry is None or entry[0] is not tokenizer:
        entry = _NORMALIZERS[id(tokenizer)] = (tokenizer, Normalizer.for_tokenizer(tokenizer))
    return entry[1]


def encode_windows(tokenizer: Tokenizer, texts: list[str], max_windows: int | None = MAX_SEGMENTS,
                   sentence_segments: bool = True, normalize: bool = True) -> Windows:
    """Every text becomes one or more windows (the tokenizer's overflow gives the overlapping rest).

    A text longer than one window also contributes one segment per sentence (at most `max_windows`),
    except with max_windows=1, which means exactly one window per text (training indexes them by text).
    Texts are first de-obfuscated (moderation/normalize.py) unless `normalize` is False.
    """
    if normalize:
        fold = normalizer_for(tokenizer)
        texts = [fold(t) for t in texts]
    sentence_segments = sentence_segments and max_windows != 1
    ids, owner = [], []
    long_texts = []
    for i, enc in enumerate(tokenizer.encode_batch(texts, add_special_tokens=True)):
        parts = [enc, *enc.overflowing]
        if max_windows is not None:
            parts = parts[:max_windows]
        for part in parts:
            ids.append(np.asarray(part.ids, dtype=np.int64))
            owner.append(i)
        if sentence_segments and enc.overflowing:
            long_texts.append(i)
    for i in long_texts:
        sents = sentences(texts[i])
        if len(sents) < 2:
            continue
        if max_windows is not None:
            sents = sents[:max_windows]
        for enc in tokenizer.encode_batch(sents, add_special_tokens=True):
            ids.append(np.asarray(enc.ids, dtype=np.int64))  # a long sentence: its first window (the rest is in the windows above)
            owner.append(i)
    return Windows(ids=ids, owner=np.asarray(owner, dtype=np.int64))


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
