"""Does a harmless text become harmful as it grows? Each harm score of n everyday sentences, per package.

    .venv/bin/python scripts/length_drift.py models/default runs/pkg-new [--lengths 20 50 100 300] [--seeds 7 1 2 3]

The sentences are the behavioural suite's benign filler (moderation/behavioural.py `benign_prefix`); no single one
scores as harm. A score that climbs with n is a model that has learned length, or a kind of long text, as harm:
the 0.5.0 candidate gave `self_harm` 0.27-0.35 at 300 sentences, over its 0.2 review threshold
(docs/benchmarks.md). Scores of each length are the median over seeds; `*` marks one at or above the category's
review threshold.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HARM = ("toxic", "hate", "violence", "sexual", "self_harm")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("packages", nargs="+", help="model package folders")
    ap.add_argument("--lengths", type=int, nargs="+", default=[20, 50, 100, 300], help="sentences per text")
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 1, 2, 3], help="one text per seed and length")
    args = ap.parse_args()

    from moderation.behavioural import benign_prefix
    from moderation.runtime import Moderator

    print("package | sentences | " + " | ".join(HARM))
    for package in args.packages:
        mod = Moderator.load(package)
        for n in args.lengths:
            scores = mod.score([benign_prefix(n, seed) for seed in args.seeds])
            cells = []
            for c in HARM:
                k = mod.categories.index(c)
                median = statistics.median(float(s) for s in scores[:, k])
                cells.append(f"{median:.3f}{'*' if median >= mod.review_thresholds[k] else ''}")
            print(f"{package} ({mod.version}) | {n} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
