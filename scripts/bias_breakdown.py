"""Which texts pull an identity group's BPSN AUC down, on the splits a training decision may read.

BPSN AUC (Borkan et al. 2019) falls when non-hateful texts that mention a group score above hateful texts about
other groups. `benchmarks/generalization.py` reports it on the test split, which may not choose data. This script
computes the same measure on validation and gate and lists, for each group, the subgroup negatives scored above the
median background positive, by source: the kind of hard negative the next recipe lacks.

    MODERATION_DATA_DIR=../shared/datasets .venv/bin/python scripts/bias_breakdown.py --model models/default \
        --out benchmarks/results/bias-breakdown.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.generalization import groups_of, identity_bias  # noqa: E402

SHOWN = 8  # example texts per group, highest-scoring first


def outscoring_negatives(examples, scores: np.ndarray, y: np.ndarray, membership: list[set[str]]) -> dict:
    """Per group: subgroup negatives scored at or above the median background positive (hate about other groups)."""
    out = {}
    for g in sorted({g for m in membership for g in m}):
        inside = np.array([g in m for m in membership])
        background_pos = scores[~inside & y]
        negatives = np.nonzero(inside & ~y)[0]
        if not len(background_pos) or not len(negatives):
            continue
        median = float(np.median(background_pos))
        above = [i for i in negatives[np.argsort(-scores[negatives])] if scores[i] >= median]
        out[g] = {"subgroup_negatives": int(len(negatives)), "above_median_background_positive": len(above),
                  "median_background_positive": round(median, 4),
                  "by_source": dict(Counter(examples[i].source for i in above).most_common()),
                  "examples": [{"score": round(float(scores[i]), 3), "source": examples[i].source,
                                "text": examples[i].text[:200]} for i in above[:SHOWN]]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/default")
    p.add_argument("--splits", nargs="+", default=["validation", "gate"], choices=["validation", "gate"])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    from moderation.runtime import Moderator
    from moderation.taxonomy import load_taxonomy
    from moderation.training.data import load_examples, resolve_data_dir

    started = time.time()
    tax = load_taxonomy()
    examples = [e for e in load_examples(resolve_data_dir(args.data_dir), taxonomy=tax)
                if e.split in args.splits and e.labels["hate"] is not None]
    mod = Moderator.load(args.model)
    print(f"scoring {len(examples)} texts with {mod.version}", file=sys.stderr, flush=True)
    scores = mod.score([e.text for e in examples])[:, mod.categories.index("hate")]
    y = np.array([e.labels["hate"] >= 0.5 for e in examples])
    membership = [groups_of(e.text, e.identities) for e in examples]
    bias = identity_bias(scores[:, None], examples, 0)
    result = {"model": {"path": args.model, "version": mod.version}, "splits": args.splits,
              "identity_bias": bias, "outscoring_negatives": outscoring_negatives(examples, scores, y, membership),
              "seconds": round(time.time() - started, 1)}
    Path(args.out).write_text(json.dumps(result, indent=2))
    for g, r in sorted(bias["groups"].items(), key=lambda kv: kv[1]["bpsn_auc"] or 2):
        o = result["outscoring_negatives"].get(g, {})
        print(f"{g:16s} n {r['n']:5d} pos {r['positives']:4d}  BPSN {r['bpsn_auc'] if r['bpsn_auc'] is None else round(r['bpsn_auc'], 3)}"
              f"  negatives above the median background positive: {o.get('above_median_background_positive')}"
              f"/{o.get('subgroup_negatives')} {o.get('by_source')}")


if __name__ == "__main__":
    main()
