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
  6. runs of 3+ single letters separated by single spaces ("i d i o t") join, again only when the joined
     word is in the vocabulary ("a b c" stays)
The vocabulary check is what keeps false positives down; benchmarks/robustness.py measures both effects.
"""

from __future__ import annotations

import re
import unicodedata

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
_NEEDS_WORK = re.compile(r"[^\x00-\x7f]|[A-Za-z][" + re.escape(LEET_CHARS) + r"]|[" + re.escape(LEET_CHARS) + r"][A-Za-z]|(?<!\S)[A-Za-z] [A-Za-z] ")


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
        return _SPACED.sub(self._join_spaced, text)

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
                if best[start] is not None and (len(piece) > 1 or piece in "ai") and self._known(piece):
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
        return " ".join(words) if words and len(words) * 2 <= len(joined) else m.group(0)
