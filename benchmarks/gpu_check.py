"""One prepared check of the CUDA path, for a machine with an NVIDIA GPU (under 10 minutes).

    pip install onnxruntime-gpu   # in place of onnxruntime, on the GPU machine
    .venv/bin/python benchmarks/gpu_check.py [--checkpoint runs/sft-v2] [--n 5000]

Builds, from the policy checkpoint, the fused fp32 graph and an fp16 copy of it (weights and activations in
fp16, inputs and outputs kept int64/fp32: onnxruntime.transformers' float16 conversion), then scores the
same test texts with:
  cpu_int8      the shipped package on the CPU provider (the reference the CPU numbers come from)
  cuda_fp32     the fused fp32 graph on the CUDA provider
  cuda_fp16     the fp16 graph on the CUDA provider
  cuda_int8     the shipped INT8 package on the CUDA provider (MatMulNBits has CUDA kernels; slower paths
                fall back to the CPU provider, which this run would show as low speed)
Per engine: texts/s at batch 32 and 256 (length-sorted, token budget raised for the GPU), single-text p50,
max |p - p_cpu_fp32| and the AUPRC per category vs the CPU fp32 graph. Results: benchmarks/results/gpu_check.json
with the device named (nvidia-smi). `--allow-cpu` runs the same code on the CPU provider, to test the script
on a machine without a GPU (numbers then mean nothing for GPUs).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def device_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or "no GPU reported"
    except (OSError, subprocess.TimeoutExpired):
        return "nvidia-smi not found"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(ROOT / "runs" / "sft-v2"))
    ap.add_argument("--model", default=str(ROOT / "models" / "default"))
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--allow-cpu", action="store_true", help="no GPU: run the CUDA engines on the CPU provider (tests the script)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_check.json")
    args = ap.parse_args()

    import onnxruntime as ort

    from moderation.runtime import Moderator
    from moderation.taxonomy import load_taxonomy
    from moderation.training.data import label_matrix, load_examples
    from moderation.training.evaluate import auprc
    from moderation.training.export import export_onnx, optimize_graph
    from moderation.training.policy import PolicyModel

    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if not has_cuda and not args.allow_cpu:
        sys.exit(f"no CUDAExecutionProvider in this onnxruntime ({ort.get_available_providers()}): "
                 "pip install onnxruntime-gpu, or pass --allow-cpu to test the script")
    gpu = "cuda" if has_cuda else "cpu"
    started = time.time()
    names = load_taxonomy().names
    test = [e for e in load_examples(None) if e.split == "test"]
    random.Random(0).shuffle(test)
    sample = test[: args.n]
    texts = [e.text for e in sample]
    y, m = label_matrix(sample, names)

    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    policy = PolicyModel.load(args.checkpoint).eval()
    enc = policy.bert().config
    export_onnx(policy, work / "plain.onnx")
    optimize_graph(work / "plain.onnx", work / "fp32.onnx", enc.num_attention_heads, enc.hidden_size)
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    fp16 = OnnxModel(onnx.load(str(work / "fp32.onnx")))
    fp16.convert_float_to_float16(keep_io_types=True)
    fp16.save_model_to_file(str(work / "fp16.onnx"))
    for name in ("fp32", "fp16"):
        pkg = work / f"pkg_{name}"
        shutil.copytree(args.model, pkg, ignore=shutil.ignore_patterns("model.onnx", "export_report.json"))
        shutil.copyfile(work / f"{name}.onnx", pkg / "model.onnx")

    engines = {"cpu_fp32": (work / "pkg_fp32", "cpu"), "cpu_int8": (Path(args.model), "cpu"),
               "cuda_fp32": (work / "pkg_fp32", gpu), "cuda_fp16": (work / "pkg_fp16", gpu), "cuda_int8": (Path(args.model), gpu)}
    results, ref = {}, None
    for engine, (pkg, device) in engines.items():
        row = {"device": device}
        for batch in (32, 256):
            mod = Moderator.load(pkg, device=device, batch_size=batch, verify=False)
            mod.max_batch_tokens = batch * 64 if device == "cuda" else mod.max_batch_tokens
            probs = mod.score(texts[:64])
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                probs = mod.score(texts)
                times.append(time.perf_counter() - t0)
            row[f"texts_per_s_batch{batch}"] = len(texts) / statistics.median(times)
        lat = []
        for t in texts[:200]:
            t0 = time.perf_counter()
            mod.score([t])
            lat.append((time.perf_counter() - t0) * 1000)
        row["latency_ms_p50"] = float(np.percentile(lat, 50))
        row["providers"] = mod.session.get_providers()
        if ref is None:
            ref = probs
        row["max_abs_diff_vs_cpu_fp32"] = float(np.abs(probs - ref).max())
        row["auprc"] = dict(zip(names, auprc(probs, y, m)))
        results[engine] = row
        print(engine, {k: v for k, v in row.items() if k != "auprc"}, file=sys.stderr, flush=True)
    report = {"device": device_name() if has_cuda else "CPU only (--allow-cpu: script test, not a GPU number)",
              "onnxruntime": ort.__version__, "n_texts": len(texts), "seconds": time.time() - started, "engines": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
