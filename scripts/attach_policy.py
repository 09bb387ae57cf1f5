"""Attach a torch policy checkpoint to an existing model package, so that `moderate loop` can start from it.

    .venv/bin/python scripts/attach_policy.py --package models/default --checkpoint runs/sft-v4-spans [--version 0.4.2]

`moderate export` does this itself; this script is for a package exported before it did (0.4.1). The
checkpoint must be the one the package was exported from: the check compares the rebuilt policy with the
checkpoint on validation texts, not with the ONNX model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--package", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--version", help="new version string for the manifest (the package's contents change)")
    ap.add_argument("--texts", type=int, default=500, help="validation texts for the fidelity check")
    args = ap.parse_args()

    import numpy as np

    from moderation.package import read_manifest, write_manifest
    from moderation.taxonomy import load_taxonomy
    from moderation.training.data import load_examples
    from moderation.training.policy import PolicyModel
    from moderation.training.policy_delta import attach_policy

    tax = load_taxonomy(None)
    val = [e for e in load_examples(None, taxonomy=tax, seed=0) if e.split == "validation"]
    texts = [val[i].text for i in sorted(np.random.default_rng(0).choice(len(val), min(args.texts, len(val)), replace=False))]
    report = attach_policy(args.package, PolicyModel.load(args.checkpoint), texts)
    if args.version:
        manifest = read_manifest(args.package)
        write_manifest(args.package, {**{k: v for k, v in manifest.items() if k not in ("format", "files")}, "version": args.version})
    print(json.dumps(report))


if __name__ == "__main__":
    main()
