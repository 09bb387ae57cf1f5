"""Undo cheap obfuscation before tokenization: "𝐢𝐝𝐢𝐨𝐭", "іdіоt" (Cyrillic), "id\u200biot", "1d10t",
"i d i o t" all become "idiot". Used by training, export and the runtime alike (windows.encode_windows),
so the model always sees the same kind of text. Pure Python, no torch.

Steps, each chosen so that ordinary text passes through unchanged:
  1. lone surrogates (invalid Unicode that tokenizers reject) become U+FFFD
  2. Unicode NFKC: fullwidth, mathematical and other compatibility letters fold to plain ones
  3. zero-width and invisible characters (ZWSP, ZWNJ, ZWJ, word joiner, BOM, soft hyphen) are removed
  4. homoglyphs (Cyrillic/Greek letters that look Latin) fold to Latin, but only inside words that also
     contain Latin letters: a Russian or Greek sentence is left alone
  5. leetspeak (1->i, 3->e, 0->o, @->a, $->s, …) folds inside a word that mixes letters with such digits
     or symbols, and only when the result is a whole word of the tokenizer's vocabulary ("10am" stays)
  6. runs of 3+ single letters separated by single spaces ("i d i o t") join when the joined word is in
     the vocabulary, or split into vocabulary words ("y o u i d i o t" -> "you idiot"); a run of 4+ letters
     that stands alone between wider gaps or the text's edges and splits only with two-letter debris joins
     as one word instead ("y o u  a r e  a  m o r o n": the writer's own word breaks; "moron" is not one
     vocabulary word). "x q z" and "A B C D E F G" stay.
  7. runs of 3+ single letters joined by hyphens, dots or asterisks ("m-u-r-d-e-r", "k.i.l.l") join when
     the joined word is in the vocabulary ("U.S.A" becomes "USA"; "x-y-q" stays)
The vocabulary check is what keeps false positives down; benchmarks/robustness.py measures both effects.

`Normalizer.with_offsets` gives the same text plus, for every character of it, the range of the original
text it came from, so a span found in the normalised text can be reported in the text the user passed.
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher

import numpy as np

INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u2061\u2062\u2063\u2064"), None)

HOMOGLYPHS = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y",
    "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ո": "n",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X",
    "І": "I", "Ј": "J", "Ѕ": "S",
    # Greek
    "α": "a", "ο": "o", "ρ": "p", "ι": "i", "κ": "k", "ν": "v", "τ": "t", "υ": "u", "χ": "x", "ε": "e",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P",
    "Τ": "T", "Υ": "Y", "Χ": "X",
})
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a",
                      "$": "s", "!": "i", "|": "l", "+": "t", "€": "e"})
LEET_CHARS = "0134578@$!|+€9"
SUFFIXES = ("s", "es", "ed", "ing", "er", "ers", "y", "ly", "ty")

_WORD = re.compile(r"\S+")
_HAS_LATIN = re.compile(r"[A-Za-z]")
_HAS_CONFUSABLE = re.compile("[" + "".join(sorted({chr(k) for k in HOMOGLYPHS})) + "]")
_LEET_WORD = re.compile(r"(?<![\w@$!|+€])(?=[\w@$!|+€]*[A-Za-z])(?=[\w@$!|+€]*[" + re.escape(LEET_CHARS) + r"])[\w@$!|+€]{3,}")
_SPACED = re.compile(r"(?<!\S)(?:[A-Za-z] ){2,}[A-Za-z](?=[\s.,!?;:'\")]|$)")
_SEPARATED = re.compile(r"(?<![\w\-.*])(?:[A-Za-z][\-.*]){2,}[A-Za-z](?![\w\-*])")
# Two-letter words a spaced-out run may be split into; other two-letter pieces ("mo ron") are wordpiece debris.
SHORT_WORDS = frozenset("a i am an as at be by do go he if in is it me my no of oh ok on or so to up us we ya ur".split())
_NEEDS_WORK = re.compile(r"[^\x00-\x7f]|[A-Za-z][" + re.escape(LEET_CHARS) + r"]|[" + re.escape(LEET_CHARS) + r"][A-Za-z]|(?<!\S)[A-Za-z] [A-Za-z] |[A-Za-z][\-.*][A-Za-z][\-.*][A-Za-z]")


class Normalizer:
    """`Normalizer(vocab)(text)`; `vocab` is a set of lower-case whole words (the tokenizer's)."""

    def __init__(self, vocab: set[str] | None = None):
        self.vocab = vocab or set()

    @classmethod
    def for_tokenizer(cls, tokenizer) -> "Normalizer":
        words = {w for w in tokenizer.get_vocab() if w.isalpha() and not w.startswith("##") and len(w) > 1}
        return cls(words)

    def __call__(self, text: str) -> str:
        if not _NEEDS_WORK.search(text):  # plain ASCII with nothing suspicious: the common case, unchanged
            return text
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> '?'
        text = unicodedata.normalize("NFKC", text).translate(INVISIBLE)
        if _HAS_CONFUSABLE.search(text):
            text = _WORD.sub(self._fold_homoglyphs, text)
        text = _LEET_WORD.sub(self._fold_leet, text)
        text = _SEPARATED.sub(self._join_separated, text)
        return _SPACED.sub(self._join_spaced, text)

    def with_offsets(self, text: str) -> tuple[str, np.ndarray, np.ndarray]:
        """(normalised, starts, ends): normalised[i] came from text[starts[i]:ends[i]]. The normalised text
        is exactly `self(text)`. Every step is replayed on (character, source range) pairs: NFKC per base
        character and its combining marks, removals drop pairs, 1:1 folds keep them, joined letters keep
        their own ranges and an inserted space takes its neighbour's."""
        if not _NEEDS_WORK.search(text):
            idx = np.arange(len(text), dtype=np.int64)
            return text, idx, idx + 1
        chars: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        i = 0
        while i < len(text):
            j = i + 1
            while j < len(text) and _joins_previous(text[j]):
                j += 1
            piece = text[i:j].encode("utf-8", "replace").decode("utf-8")
            for ch in unicodedata.normalize("NFKC", piece).translate(INVISIBLE):
                chars.append(ch)
                starts.append(i)
                ends.append(j)
            i = j
        tracked = (chars, starts, ends)
        if _HAS_CONFUSABLE.search("".join(chars)):
            tracked = _sub_tracked(_WORD, self._fold_homoglyphs, tracked)
        tracked = _sub_tracked(_LEET_WORD, self._fold_leet, tracked)
        tracked = _sub_tracked(_SEPARATED, self._join_separated, tracked)
        tracked = _sub_tracked(_SPACED, self._join_spaced, tracked)
        out = "".join(tracked[0])
        expected = self(text)
        if out != expected:  # a composition across base characters (rare): align the two texts instead
            return expected, *_aligned_ranges(text, expected)
        return out, np.asarray(tracked[1], dtype=np.int64), np.asarray(tracked[2], dtype=np.int64)

    def _known(self, word: str) -> bool:
        """A whole vocabulary word, or one with a common English ending ("idiots", "trolling")."""
        w = word.lower()
        if w in self.vocab:
            return True
        return any(w.endswith(end) and len(w) - len(end) >= 3 and w[: -len(end)] in self.vocab for end in SUFFIXES)

    def _segment(self, letters: str) -> list[str] | None:
        """Split a run of letters into the fewest known words ("youidiot" -> ["you", "idiot"]), or None."""
        n = len(letters)
        if n > 60:
            return None
        best: list[list[str] | None] = [[]] + [None] * n
        for end in range(1, n + 1):
            for start in range(max(0, end - 20), end):
                piece = letters[start:end]
                if best[start] is not None and (piece in ("a", "i") or len(piece) > 1 and self._known(piece)):
                    cand = best[start] + [piece]
                    if best[end] is None or len(cand) < len(best[end]):
                        best[end] = cand
        return best[n]

    @staticmethod
    def _fold_homoglyphs(m: re.Match) -> str:
        word = m.group(0)
        if _HAS_LATIN.search(word) and _HAS_CONFUSABLE.search(word):
            return word.translate(HOMOGLYPHS)
        return word

    def _fold_leet(self, m: re.Match) -> str:
        word = m.group(0)
        core = word.rstrip("!.,?")  # "idiot!" keeps its "!"; "id!ot" folds
        folded = core.translate(LEET)
        return folded + word[len(core):] if self._known(folded) else word

    def _join_spaced(self, m: re.Match) -> str:
        joined = m.group(0).replace(" ", "")
        if self._known(joined):
            return joined
        words = self._segment(joined)  # several spaced-out words in a row: "y o u i d i o t"
        split = bool(words) and len(words) * 2 <= len(joined)
        if split and all(len(w) > 2 or w.lower() in SHORT_WORDS for w in words):
            return " ".join(words)
        text, a, b = m.string, m.start(), m.end()
        gap_before = a == 0 or text[max(0, a - 2):a] == "  " or not text[a - 1].isspace()
        gap_after = b == len(text) or text[b:b + 2] == "  " or not text[b].isspace()
        if len(joined) >= 4 and gap_before and gap_after:
            return joined  # one word the vocabulary lacks ("moron"): as the tokenizer would see it written plainly
        # Inside a sentence the run may hold several words; a split with two-letter pieces still beats none
        # (benchmarks/robustness.py: refusing it cost 5 of 600 spaced-out positives).
        return " ".join(words) if split else m.group(0)

    def _join_separated(self, m: re.Match) -> str:
        joined = re.sub(r"[\-.*]", "", m.group(0))
        return joined if self._known(joined) else m.group(0)


def _joins_previous(ch: str) -> bool:
    """Characters NFKC may compose with the one before: combining marks and Hangul vowel/final jamo."""
    return unicodedata.combining(ch) != 0 or "\u1160" <= ch <= "\u11ff"


def _sub_tracked(pattern: re.Pattern, replace, tracked: tuple[list[str], list[int], list[int]]):
    """`pattern.sub(replace, text)` on characters that carry their source ranges."""
    chars, starts, ends = tracked
    text = "".join(chars)
    out_c: list[str] = []
    out_s: list[int] = []
    out_e: list[int] = []
    last = 0
    for m in pattern.finditer(text):
        a, b = m.span()
        out_c += chars[last:a]
        out_s += starts[last:a]
        out_e += ends[last:a]
        new = replace(m)
        if len(new) == b - a:  # a 1:1 fold
            positions = list(range(a, b))
        else:  # letters kept in order, spaces dropped or inserted: walk both
            positions, k = [], a
            for ch in new:
                while k < b and chars[k] != ch and chars[k] in " -.*":
                    k += 1
                if k < b and chars[k] == ch:
                    positions.append(k)
                    k += 1
                else:
                    positions.append(min(k, b - 1))  # an inserted space: the next letter's range
        out_c += list(new)
        out_s += [starts[p] for p in positions]
        out_e += [ends[p] for p in positions]
        last = b
    out_c += chars[last:]
    out_s += starts[last:]
    out_e += ends[last:]
    return out_c, out_s, out_e


def _aligned_ranges(original: str, normalised: str) -> tuple[np.ndarray, np.ndarray]:
    """Source ranges by aligning the two texts: equal runs map 1:1, a replaced run maps to its whole source."""
    starts = np.zeros(len(normalised), dtype=np.int64)
    ends = np.zeros(len(normalised), dtype=np.int64)
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, original, normalised, autojunk=False).get_opcodes():
        if tag == "equal":
            starts[j1:j2] = np.arange(i1, i2)
            ends[j1:j2] = np.arange(i1, i2) + 1
        elif j2 > j1:
            starts[j1:j2], ends[j1:j2] = i1, max(i2, i1 + 1) if i1 < len(original) else i1
    return starts, ends
