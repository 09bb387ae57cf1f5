"""Spans: the characters of a text that a flag rests on. Pure numpy, no torch.

A span is reported in the text the user passed: token offsets in the normalised text go back through
`Normalizer.with_offsets`, so a span over "1d10t" or "𝐢𝐝𝐢𝐨𝐭" covers those characters, not "idiot".
Token selection works the same for both kinds of evidence (see `Span.source`): tokens whose probability
reaches the threshold are selected, widened to whole words (a rater marks "idiots", not "##s") and joined
when only spaces separate them, so "stupid ignorant idiot" is one span.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

SPAN_HEAD = "span_head"  # trained on rated spans (toxic_spans): toxic, hate, violence
CATEGORY_TOKENS = "category_tokens"  # the classification head's own per-token score, whose max is the text's score
SEGMENT = "segment"  # the sentence or window that scored highest, when no single token carries the score

# What `spans=` asks for. FLAGGED: evidence for the categories the text is flagged in. ALL: that, plus the span
# head's own marks in its categories whether or not the classifier flagged them (the head's threshold decides):
# for audits and for reviewers deciding a category the classifier left under its threshold.
FLAGGED, ALL = "flagged", "all"
SPAN_MODES = (FLAGGED, ALL)


def span_mode(spans) -> str | None:
    """None (no spans), FLAGGED or ALL from what a caller passed: False/None, True/"flagged", "all"."""
    if spans is None or spans is False:
        return None
    if spans is True:
        return FLAGGED
    if isinstance(spans, str) and spans in SPAN_MODES:
        return spans
    raise ValueError(f"spans must be true, false, {FLAGGED!r} or {ALL!r}, got {spans!r}")


_WORD_CHAR = re.compile(r"[\w'’*]")  # "don't", "f*ck" are one word to a rater


@dataclass(frozen=True)
class Span:
    start: int  # character offsets into the original text: text[start:end]
    end: int
    category: str
    score: float
    source: str  # SPAN_HEAD, CATEGORY_TOKENS or SEGMENT

    def to_dict(self) -> dict:
        return asdict(self)


def token_char_ranges(offsets, special_tokens_mask, starts: np.ndarray, ends: np.ndarray, shift: int = 0) -> np.ndarray:
    """(T, 2) ranges in the original text for tokens whose `offsets` point into a normalised text that starts
    at `shift` in the full normalised text; special tokens get (0, 0)."""
    out = np.zeros((len(offsets), 2), dtype=np.int64)
    for t, ((a, b), special) in enumerate(zip(offsets, special_tokens_mask)):
        if special or b <= a:
            continue
        out[t] = starts[shift + a], ends[shift + b - 1]
    return out


def _widen_to_word(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and _WORD_CHAR.match(text[start - 1]) and _WORD_CHAR.match(text[start]):
        start -= 1
    while end < len(text) and _WORD_CHAR.match(text[end]) and _WORD_CHAR.match(text[end - 1]):
        end += 1
    return start, end


def spans_from_token_probs(text: str, ranges: np.ndarray, probs: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """(start, end, score) of the merged spans of tokens with prob >= threshold, in text order."""
    picked = np.flatnonzero((probs >= threshold) & (ranges[:, 1] > ranges[:, 0]))
    if not len(picked):
        return []
    pieces = sorted((*_widen_to_word(text, int(ranges[t, 0]), int(ranges[t, 1])), float(probs[t])) for t in picked)
    merged = [list(pieces[0])]
    for a, b, s in pieces[1:]:
        last = merged[-1]
        if a <= last[1] or not text[last[1]:a].strip():  # overlapping, touching or only whitespace between
            last[1], last[2] = max(last[1], b), max(last[2], s)
        else:
            merged.append([a, b, s])
    return [(a, b, s) for a, b, s in merged]


def merge_spans(spans: list[Span]) -> list[Span]:
    """One span per category and stretch of text: windows overlap, so the same word can come back twice."""
    out: list[Span] = []
    for s in sorted(spans, key=lambda s: (s.category, s.source, s.start, s.end)):
        last = out[-1] if out else None
        if last and last.category == s.category and last.source == s.source and s.start <= last.end:
            out[-1] = Span(last.start, max(last.end, s.end), s.category, max(last.score, s.score), s.source)
        else:
            out.append(s)
    return sorted(out, key=lambda s: (s.start, s.end, s.category))


def char_f1(predicted: set[int], gold: set[int]) -> float:
    """SemEval-2021 Task 5's per-post score: F1 of character offsets; both empty scores 1, one empty 0."""
    if not gold and not predicted:
        return 1.0
    if not gold or not predicted:
        return 0.0
    tp = len(predicted & gold)
    if tp == 0:
        return 0.0
    p, r = tp / len(predicted), tp / len(gold)
    return 2 * p * r / (p + r)
