"""What scoring every sentence alone costs in ranking quality: test-split AUPRC on the ten original sources
for one package, with its own segmentation (0.4: windows + every sentence) and with windows only.

    .venv/bin/python benchmarks/segmentation_cost.py [--model models/default]

Results: benchmarks/results/segmentation_cost.json. (Throughput of the two is in throughput_0.4.0.json:
runtime_int8 vs runtime_int8_first_window.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/default")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "segmentation_cost.json"))
    args = p.parse_args()

    from generalization import ORIGINAL_SOURCES

    from moderation.runtime import Moderator
    from moderation.taxonomy import load_taxonomy
    from moderation.training.data import label_matrix, load_examples
    from moderation.training.evaluate import auprc
    from moderation.windows import SENTENCES_NONE

    tax = load_taxonomy()
    test = [e for e in load_examples(taxonomy=tax) if e.split == "test" and e.source in ORIGINAL_SOURCES]
    y, m = label_matrix(test, tax.names)
    mod = Moderator.load(args.model)
    out = {"model": str(Path(args.model).resolve().relative_to(ROOT)) if Path(args.model).resolve().is_relative_to(ROOT)
           else args.model, "version": mod.version, "n": len(test)}
    out[f"auprc_{mod.sentence_segments}"] = dict(zip(tax.names, auprc(mod.score([e.text for e in test]), y, m)))
    mod.sentence_segments = SENTENCES_NONE
    out["auprc_windows_only"] = dict(zip(tax.names, auprc(mod.score([e.text for e in test]), y, m)))
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
