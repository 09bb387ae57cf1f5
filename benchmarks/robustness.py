"""Recall on obfuscated copies of harmful test texts, with and without the de-obfuscation step.

    .venv/bin/python benchmarks/robustness.py [--model models/default] [--n 600]

Takes up to `--n` test texts positive for a harmful category (toxic, hate, violence, sexual, self_harm)
and perturbs every word of 3+ letters with probability 0.5 (seeded), one kind of perturbation per copy:
  homoglyph   Latin letters -> look-alike Cyrillic/Greek ones
  zero_width  zero-width spaces between letters
  leetspeak   a->4, e->3, i->1, o->0, s->5, t->7
  spaced      letters separated by spaces ("i d i o t")
  fullwidth   fullwidth / mathematical letter forms
Recall = share of positives whose positive category reaches its review threshold. Reported: clean text,
perturbed with the normaliser off (what the model alone does) and on (what users run). False positives:
flag rate on harmless test texts (every harmful category known and negative), normaliser off vs on.
Target: perturbation costs at most 10% relative recall; the normaliser adds no false positives.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HARMFUL = ["toxic", "hate", "violence", "sexual", "self_harm"]
TO_CYRILLIC = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "y": "у", "x": "х", "i": "і", "s": "ѕ", "j": "ј"})
TO_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})


def fullwidth(w: str) -> str:
    return "".join(chr(ord(ch) - 0x21 + 0xFF01) if "!" <= ch <= "~" else ch for ch in w)


PERTURB = {
    "homoglyph": lambda w: w.translate(TO_CYRILLIC),
    "zero_width": lambda w: "\u200b".join(w),
    "leetspeak": lambda w: w.translate(TO_LEET),
    "spaced": lambda w: " ".join(w),
    "fullwidth": fullwidth,
}


def perturb(text: str, kind: str, rng: random.Random, p: float = 0.5) -> str:
    out = []
    for word in text.split(" "):
        if len(word) >= 3 and word.isalpha() and rng.random() < p:
            word = PERTURB[kind](word)
        out.append(word)
    return " ".join(out)


def _fold(mod, text: str) -> str:
    from moderation.windows import normalizer_for

    return normalizer_for(mod.tokenizer)(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models/default")
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--negatives", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-auprc", action="store_true", help="also score the whole test split with the normaliser off and on")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/robustness.json")
    args = ap.parse_args()

    from moderation.runtime import Moderator
    from moderation.training.data import load_examples

    mod = Moderator.load(args.model)
    idx = [mod.categories.index(c) for c in HARMFUL]
    test = [e for e in load_examples(None, seed=0) if e.split == "test"]
    pos = [e for e in test if any((e.labels.get(c) or 0) >= 0.5 for c in HARMFUL)]
    neg = [e for e in test if all(e.labels.get(c) is not None and e.labels[c] < 0.5 for c in HARMFUL)]
    rng = np.random.default_rng(args.seed)
    pos = [pos[i] for i in sorted(rng.choice(len(pos), min(args.n, len(pos)), replace=False))]
    neg = [neg[i] for i in sorted(rng.choice(len(neg), min(args.negatives, len(neg)), replace=False))]
    pos_mask = np.array([[(e.labels.get(c) or 0) >= 0.5 for c in HARMFUL] for e in pos])
    thr = mod.review_thresholds[idx]

    raw = Moderator.load(args.model, normalize=False)

    def score(texts: list[str], normalize: bool) -> np.ndarray:
        return (mod if normalize else raw).score(texts)[:, idx]

    def recall(scores: np.ndarray) -> float:
        hit = (scores >= thr) & pos_mask  # caught in one of its own positive categories
        return float(hit.any(1).mean())

    clean = [e.text for e in pos]
    rows = {"clean": {"normaliser_off": recall(score(clean, False)), "normaliser_on": recall(score(clean, True))}}
    for kind in PERTURB:
        r = random.Random(f"{args.seed}:{kind}")
        texts = [perturb(t, kind, r) for t in clean]
        rows[kind] = {"normaliser_off": recall(score(texts, False)), "normaliser_on": recall(score(texts, True))}
        print(kind, rows[kind], flush=True)
    base = rows["clean"]["normaliser_on"]
    for kind, row in rows.items():
        row["relative_recall_on"] = row["normaliser_on"] / base if base else None
    neg_texts = [e.text for e in neg]
    fp = {"normaliser_off": float((score(neg_texts, False) >= thr).any(1).mean()),
          "normaliser_on": float((score(neg_texts, True) >= thr).any(1).mean())}
    result = {"model": str(args.model), "positives": len(pos), "negatives": len(neg), "recall": rows,
              "false_positive_rate_on_harmless": fp, "command": "benchmarks/robustness.py " + " ".join(sys.argv[1:])}
    if args.test_auprc:  # does the normaliser change anything on ordinary (unperturbed) test text?
        from moderation.training.data import label_matrix
        from moderation.training.evaluate import auprc

        y, m = label_matrix(test, mod.categories)
        on, off = mod.score([e.text for e in test]), raw.score([e.text for e in test])
        result["test_auprc"] = {"normaliser_off": dict(zip(mod.categories, auprc(off, y, m))),
                                "normaliser_on": dict(zip(mod.categories, auprc(on, y, m))),
                                "texts_changed_by_normaliser": sum(e.text != _fold(mod, e.text) for e in test),
                                "max_abs_score_change": float(np.abs(on - off).max())}
        print(json.dumps(result["test_auprc"], indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print("| perturbation | recall, normaliser off | recall, normaliser on | relative to clean |\n|---|---|---|---|")
    for kind, row in rows.items():
        print(f"| {kind} | {row['normaliser_off']:.3f} | {row['normaliser_on']:.3f} | {row['relative_recall_on']:.3f} |")
    print(f"false-positive rate on {len(neg)} harmless texts: off {fp['normaliser_off']:.4f}, on {fp['normaliser_on']:.4f}")


if __name__ == "__main__":
    main()
