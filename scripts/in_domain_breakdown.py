"""Where the in-domain regression against an older package sits: per source and category of the ten original
sources, two packages' AUPRC and a paired bootstrap interval of the difference.

Issue 13 asks that in-domain AUPRC on the original ten sources stay within 0.01 of 0.3.0 per category. The
headline numbers pool the sources and rest on few positives for some categories (23 violence positives on the
test split), so they cannot say whether a fall is real or where it comes from. This script can, on the splits a
decision may use (validation and gate; both packages never trained on them) or, for reporting only, test.

    MODERATION_DATA_DIR=../shared/datasets .venv/bin/python scripts/in_domain_breakdown.py \
        --old runs/baseline-0.3.0 --new models/default --splits validation gate \
        --out benchmarks/results/in-domain-breakdown.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.generalization import ORIGINAL_SOURCES  # noqa: E402
from moderation.training.evaluate import MIN_POSITIVES  # noqa: E402  (the same floor as every AUPRC table here)


def auprc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, s))


def paired_interval(y: np.ndarray, old: np.ndarray, new: np.ndarray, rounds: int, rng) -> tuple[float, float]:
    """90% interval of AUPRC(new) - AUPRC(old), resampling items (positives and negatives apart, so every
    resample has the same number of positives)."""
    pos, neg = np.nonzero(y)[0], np.nonzero(~y)[0]
    diffs = []
    for _ in range(rounds):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        diffs.append(auprc(y[idx], new[idx]) - auprc(y[idx], old[idx]))
    return float(np.percentile(diffs, 5)), float(np.percentile(diffs, 95))


def breakdown(examples, old_scores, new_scores, categories, rounds: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    sources = np.array([e.source for e in examples])
    rows = {}
    for c in categories:
        labels = [e.labels[c] for e in examples]
        known = np.array([v is not None for v in labels])
        y_all = np.array([(v or 0.0) >= 0.5 for v in labels])
        k = categories.index(c)
        per = {}
        for name, where in [("all", known)] + [(s, known & (sources == s)) for s in ORIGINAL_SOURCES]:
            y = y_all[where]
            if y.sum() < MIN_POSITIVES or (~y).sum() < MIN_POSITIVES:
                continue
            o, n = old_scores[where, k], new_scores[where, k]
            lo, hi = paired_interval(y, o, n, rounds, rng)
            per[name] = {"n": int(where.sum()), "positives": int(y.sum()), "old": auprc(y, o), "new": auprc(y, n),
                         "diff_90": [lo, hi]}
        if per:
            rows[c] = per
            per["all"]["new_negatives_above_median_positive"] = outranking_negatives(
                [e for e, k_ in zip(examples, known) if k_], y_all[known], new_scores[known, k], c)
    return rows


def outranking_negatives(examples, y: np.ndarray, scores: np.ndarray, category: str) -> dict:
    """Pooled, which sources' negatives the model ranks above its median positive, and how many of them some
    annotator did call positive (a soft label between 0 and 0.5: a minority of raters): where a pooled fall is
    the model disagreeing with a majority rather than ranking wrongly."""
    if not y.any():
        return {}
    median = float(np.median(scores[y]))
    out: dict[str, dict[str, int]] = {}
    for e, yi, si in zip(examples, y, scores):
        if not yi and si >= median:
            row = out.setdefault(e.source, {"n": 0, "minority_vote": 0})
            row["n"] += 1
            row["minority_vote"] += int(0.0 < (e.labels[category] or 0.0) < 0.5)
    return {"median_positive_score": round(median, 4), "by_source": out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", required=True, help="the older package (e.g. 0.3.0)")
    p.add_argument("--new", required=True, help="the package compared with it")
    p.add_argument("--splits", nargs="+", default=["validation", "gate"], choices=["validation", "gate", "test"],
                   help="test only to report, never to choose")
    p.add_argument("--rounds", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    from moderation.runtime import Moderator
    from moderation.taxonomy import load_taxonomy
    from moderation.training.data import load_examples, resolve_data_dir

    tax = load_taxonomy()
    examples = [e for e in load_examples(resolve_data_dir(args.data_dir), taxonomy=tax)
                if e.source in ORIGINAL_SOURCES and e.split in args.splits]
    texts = [e.text for e in examples]
    started = time.time()
    old, new = Moderator.load(args.old), Moderator.load(args.new)
    scores = {}
    for name, mod in (("old", old), ("new", new)):
        print(f"scoring {len(texts)} texts with {name} ({mod.version})", file=sys.stderr, flush=True)
        s = mod.score(texts)
        scores[name] = s[:, [mod.categories.index(c) for c in tax.names]]
    result = {"old": {"path": args.old, "version": old.version}, "new": {"path": args.new, "version": new.version},
              "splits": args.splits, "rounds": args.rounds,
              "categories": breakdown(examples, scores["old"], scores["new"], tax.names, args.rounds),
              "seconds": round(time.time() - started, 1)}
    Path(args.out).write_text(json.dumps(result, indent=2))
    for c, per in result["categories"].items():
        for name, r in per.items():
            lo, hi = r["diff_90"]
            mark = "  <- worse" if hi < 0 else ("  <- better" if lo > 0 else "")
            print(f"{c:10s} {name:26s} pos {r['positives']:4d}/{r['n']:5d}  old {r['old']:.3f}  new {r['new']:.3f}  "
                  f"diff 90% [{lo:+.3f}, {hi:+.3f}]{mark}")
        above = per["all"]["new_negatives_above_median_positive"].get("by_source", {})
        if above:
            print(f"{'':10s} negatives above the median positive: " +
                  ", ".join(f"{s} {v['n']} ({v['minority_vote']} with a minority positive vote)" for s, v in above.items()))


if __name__ == "__main__":
    main()
