"""How much SemEval span F1 the flag gate costs, and how much is left without it — on the trial posts only.

    .venv/bin/python scripts/span_gate_ceiling.py models/default [runs/pkg-new …]

Spans are given only for flagged categories (docs/spans.md), so a toxic post the classifier scores under the
review threshold gets none and scores 0. This asks, per package, on the 690 SemEval-2021 trial posts (the
validation set the span threshold is tuned on; the test posts are never read here):
- the toxic score of the posts with gold spans that get no span, next to the score of the posts whose gold is
  empty (if the second were lower, some gate would separate them);
- the F1 if toxic, hate and violence were flagged from a lower review threshold (the gate's cost; a diagnosis,
  not a setting: a threshold is chosen on review cost, never on this benchmark).
Results: benchmarks/results/span-gate-ceiling.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GATES = (0.4, 0.3, 0.2, 0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("packages", nargs="+", help="model package folders")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "span-gate-ceiling.json"))
    args = ap.parse_args()

    from benchmarks.spans import predicted_offsets  # the span benchmark's own reading of a prediction
    from moderation.runtime import Moderator
    from moderation.training.data import resolve_data_dir, semeval_spans
    from moderation.training.spans import SPAN_CATEGORIES, semeval_f1

    posts = semeval_spans(resolve_data_dir(args.data_dir), "trial")
    texts, gold = [t for t, _ in posts], [set(g) for _, g in posts]
    has_gold = np.array([bool(g) for g in gold])

    def span_chars(mod):
        return predicted_offsets(mod, texts)[0]

    def quantiles(x):
        return dict(zip(("p10", "p25", "p50", "p75", "p90"), np.round(np.quantile(x, [.1, .25, .5, .75, .9]), 3).tolist()))

    results = {"command": "python scripts/span_gate_ceiling.py " + " ".join(args.packages), "posts": len(texts),
               "posts_with_gold": int(has_gold.sum()), "packages": {}}
    for package in args.packages:
        mod = Moderator.load(package)
        pred = span_chars(mod)
        toxic = mod.score(texts)[:, mod.categories.index("toxic")]
        unflagged = has_gold & np.array([not p for p in pred])
        row = {"version": mod.version, "span_threshold": mod.span_threshold, "trial_f1": round(semeval_f1(pred, gold), 4),
               "gold_posts_without_span": int(unflagged.sum()),
               "toxic_score_gold_posts_without_span": quantiles(toxic[unflagged]),
               "toxic_score_empty_gold_posts": quantiles(toxic[~has_gold]), "trial_f1_if_flagged_from": {}}
        shipped = mod.review_thresholds.copy()
        for gate in GATES:
            mod.review_thresholds = shipped.copy()
            for c in SPAN_CATEGORIES:
                k = mod.categories.index(c)
                mod.review_thresholds[k] = min(shipped[k], gate)
            row["trial_f1_if_flagged_from"][str(gate)] = round(semeval_f1(span_chars(mod), gold), 4)
        results["packages"][package] = row
        print(json.dumps({package: row}))
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
