"""Throughput: naive torch fp32 vs our runtime, side by side in one run.

    .venv/bin/python benchmarks/throughput.py [--n 2000] [--model models/default] [--checkpoint runs/sft-default]

Both engines score the same texts from the test split, each in its own subprocess (so peak RSS is its own):
  torch_fp32_naive  the policy in torch fp32, eager, batches of 32 in input order (unsorted), padded to the
                    batch's longest, truncated at 256 tokens: how one usually runs a transformers model
  runtime           `Moderator` (ONNX Runtime, INT8 weights, fused attention, length-sorted batches, and
                    overlapping windows for long texts: it scores the whole text where torch truncates)
Each engine runs `--repeats` times after a warm-up; the median is reported. Also: single-text latency
(p50/p99 over --latency-n texts, one call each) and peak RSS. Results go to benchmarks/results/throughput.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sample_texts(n: int, data_dir: str | None, seed: int = 0) -> list[str]:
    import random

    from moderation.data import load_examples

    test = [e.text for e in load_examples(data_dir) if e.split == "test"]
    random.Random(seed).shuffle(test)
    return test[:n]


def load_texts(args) -> list[str]:
    """Workers read the parent's sample from a file, so their peak RSS is the engine's, not the datasets'."""
    return json.loads(Path(args.texts_file).read_text())


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_torch(args) -> dict:
    import numpy as np
    import torch

    from moderation.policy import PolicyModel
    from moderation.windows import load_tokenizer

    torch.set_num_threads(args.threads)
    texts = load_texts(args)
    ckpt = Path(args.checkpoint)
    if (ckpt / "policy_config.json").is_file():
        model = PolicyModel.load(ckpt)
    else:  # same architecture and FLOPs: speed does not depend on the weights
        print(f"  {ckpt} not found: timing the base encoder with a fresh head (same architecture)", file=sys.stderr)
        from moderation.taxonomy import load_taxonomy

        model = PolicyModel.from_base(load_taxonomy().names)
    model.eval()
    tok = load_tokenizer(model.tokenizer_path, 256, 64)  # first window only: plain truncation

    def run(batch_texts: list[str]) -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(batch_texts), 32):
                encs = tok.encode_batch(batch_texts[i : i + 32])
                longest = max(len(e.ids) for e in encs)
                ids = np.zeros((len(encs), longest), dtype=np.int64)
                mask = np.zeros_like(ids)
                for r, e in enumerate(encs):
                    ids[r, : len(e.ids)] = e.ids
                    mask[r, : len(e.ids)] = 1
                model(torch.from_numpy(ids), torch.from_numpy(mask))
        return time.perf_counter() - t0

    run(texts[:64])  # warm-up
    times = [run(texts) for _ in range(args.repeats)]
    return {"engine": "torch_fp32_naive", "n": len(texts), "seconds": times, "texts_per_s": len(texts) / statistics.median(times),
            "peak_rss_mib": peak_rss_mib()}


def worker_runtime(args) -> dict:
    import numpy as np

    from moderation.runtime import Moderator

    texts = load_texts(args)
    rss_before_model = peak_rss_mib()
    mod = Moderator.load(args.model, threads=args.threads, batch_size=32)
    mod.score(texts[:64])  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        mod.score(texts)
        times.append(time.perf_counter() - t0)
    lat = []
    for t in texts[: args.latency_n]:
        t0 = time.perf_counter()
        mod.score([t])
        lat.append((time.perf_counter() - t0) * 1000)
    return {"engine": "runtime_onnx_int8_weights", "n": len(texts), "seconds": times, "texts_per_s": len(texts) / statistics.median(times),
            "latency_ms_p50": float(np.percentile(lat, 50)), "latency_ms_p99": float(np.percentile(lat, 99)),
            "peak_rss_mib": peak_rss_mib(), "peak_rss_before_model_mib": rss_before_model}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--latency-n", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default=str(ROOT / "models" / "default"))
    p.add_argument("--checkpoint", default=str(ROOT / "runs" / "sft-default"))
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "throughput.json"))
    p.add_argument("--worker", choices=["torch", "runtime"], help=argparse.SUPPRESS)
    p.add_argument("--texts-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker_torch(args) if args.worker == "torch" else worker_runtime(args)))
        return

    import tempfile

    texts = sample_texts(args.n, args.data_dir)
    tmp = Path(tempfile.mkdtemp()) / "texts.json"
    tmp.write_text(json.dumps(texts))
    results = {}
    for engine in ("torch", "runtime"):
        print(f"running {engine}…", file=sys.stderr)
        cmd = [sys.executable, __file__, "--worker", engine, "--texts-file", str(tmp), *sys.argv[1:]]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{engine} worker failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results[r["engine"]] = r
    base = results["torch_fp32_naive"]["texts_per_s"]
    for r in results.values():
        r["ratio_to_naive_torch"] = r["texts_per_s"] / base
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                          "python": platform.python_version()}, "n_texts": args.n, "repeats": args.repeats,
              "engines": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print("| engine | texts/s (median) | ratio | p50 ms (1 text) | p99 ms | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for r in results.values():
        print(f"| {r['engine']} | {r['texts_per_s']:.1f} | {r['ratio_to_naive_torch']:.2f}x | "
              f"{r.get('latency_ms_p50', float('nan')):.1f} | {r.get('latency_ms_p99', float('nan')):.1f} | {r['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
