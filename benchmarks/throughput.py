"""Throughput, latency, memory and quality of every way we can score text, side by side in one run.

    .venv/bin/python benchmarks/throughput.py [--n 5000] [--repeats 3] [--checkpoint runs/sft-v2]

The same `--n` texts, sampled from the test splits at their real lengths (seed 0), go through each engine in
its own subprocess (so peak RSS is that engine's own), after a warm-up, `--repeats` times; the median is
reported. The engines, in the order of the levers they add:

  torch_fp32_naive   the baseline: the policy in torch fp32, eager, batches of 32 in input order, padded
                     to the batch's longest, truncated at 256 tokens (how one usually runs a HF model)
  ort_fp32_naive     the same graph in ONNX Runtime fp32, the same naive batching: what ORT alone buys
  ort_fp32           + fused attention/LayerNorm/GELU, length-sorted batches, whole texts (overlapping
                     windows + sentences for long ones), the normaliser: our runtime pipeline in fp32
  int8_weights       + INT8 weights, fp32 compute (the 0.2.0 package format)
  runtime_int8       + INT8 compute with per-block activation quantization: the shipped models/default
  runtime_int8_first_window  the same, scoring only each text's first 256 tokens (Moderator.load(max_windows=1)):
                     the baseline's work, to separate speed from the extra windows and sentences
  int8_dynamic       ORT dynamic INT8 (per-tensor activations), for reference: fastest, least exact
  profanity_check    PyPI peer alt-profanity-check (linear SVM on bag of words; scores `toxic` only)
  hatesonar          PyPI peer hatesonar (logistic regression on n-grams; hate / offensive / neither)

Per engine: texts/s, ratio to the baseline, single-text latency p50/p99 (`--latency-n` one-text calls),
peak RSS, AUPRC per category on these texts and the largest AUPRC loss against the baseline (categories
with >= 10 positives among them), and achieved GOPS. Ops are counted, not measured: per token of every
window an engine scores, 2 x 6 layers x (4H^2 + 2HF) multiply-adds plus 2 x 6 x 2 L H for attention
(H=384, F=1536, L the window length): ~21 MOP per token. Padding is not counted (it is wasted work).
The CPU's peak is estimated from its flags and clock as cores x GHz x (64 INT8 or 16 fp32 MACs per cycle:
AVX-512 VNNI / FMA on two 256-bit pipes, as on AMD Zen 4) x 2; the clock a VM reports may be below the
boost clock, so both are printed. Results: benchmarks/results/throughput.json (+ a Markdown table).

Needs the policy checkpoint (`moderate train sft`, default runs/sft-v2) to build the non-shipped variants;
the datasets for texts and labels.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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

H, F, LAYERS = 384, 1536, 6
ENGINES = ["torch_fp32_naive", "ort_fp32_naive", "ort_fp32", "int8_weights", "runtime_int8", "runtime_int8_first_window",
           "int8_dynamic", "profanity_check", "hatesonar"]
PACKAGE_ENGINES = {"ort_fp32": "fused_fp32.onnx", "int8_weights": "int8_weights.onnx", "runtime_int8": None,
                   "runtime_int8_first_window": None, "int8_dynamic": "int8_dynamic.onnx"}
FIRST_WINDOW = {"runtime_int8_first_window"}  # the baseline's work: first 256 tokens, no extra windows or sentences


def peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so a worker
    would report its parent's (dataset-loading) peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def window_ops(lengths) -> float:
    lengths = np.asarray(lengths, dtype=np.float64)
    return float((2 * LAYERS * (lengths * (4 * H * H + 2 * H * F) + 2 * lengths * lengths * H)).sum())


def timed(run, texts, repeats):
    run(texts[:64])  # warm-up
    probs, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = run(texts)
        times.append(time.perf_counter() - t0)
        probs = out if probs is None else probs
    return probs, times


def latencies(run, texts) -> tuple[float, float]:
    lat = []
    for t in texts:
        t0 = time.perf_counter()
        run([t])
        lat.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


def naive_batches(tokenizer, texts, batch=32):
    """Input order, batches of 32, padded to the batch's longest, first 256 tokens only."""
    for i in range(0, len(texts), batch):
        encs = tokenizer.encode_batch(texts[i : i + batch])
        longest = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), longest), dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, e in enumerate(encs):
            ids[r, : len(e.ids)] = e.ids
            mask[r, : len(e.ids)] = 1
        yield ids, mask


def make_runner(engine: str, args):
    """A function texts -> (n, 7) probabilities (NaN where an engine has no such category)."""
    from moderation.windows import load_tokenizer

    threads = args.threads
    if engine == "torch_fp32_naive":
        import torch

        from moderation.training.policy import PolicyModel

        torch.set_num_threads(threads)
        model = PolicyModel.load(args.checkpoint).eval()
        tok = load_tokenizer(model.tokenizer_path, 256, 64)

        def run(texts):
            out = []
            with torch.no_grad():
                for ids, mask in naive_batches(tok, texts):
                    out.append(model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy())
            return np.concatenate(out)
        return run
    if engine == "ort_fp32_naive":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(Path(args.variants) / "plain_fp32.onnx"), opts, providers=["CPUExecutionProvider"])
        tok = load_tokenizer(Path(args.model) / "tokenizer.json", 256, 64)

        def run(texts):
            return np.concatenate([sess.run(["probs"], {"input_ids": ids, "attention_mask": mask})[0]
                                   for ids, mask in naive_batches(tok, texts)])
        return run
    if engine in PACKAGE_ENGINES:
        from moderation.runtime import Moderator

        pkg = Path(args.model) if PACKAGE_ENGINES[engine] is None else Path(args.variants) / engine
        mod = Moderator.load(pkg, threads=threads, batch_size=32, verify=PACKAGE_ENGINES[engine] is None,
                             max_windows=1 if engine in FIRST_WINDOW else None)
        return mod.score
    if engine == "profanity_check":
        from profanity_check import predict_prob

        def run(texts):
            out = np.full((len(texts), 7), np.nan)
            out[:, 0] = predict_prob(texts)
            return out
        return run
    if engine == "hatesonar":
        from hatesonar import Sonar

        sonar = Sonar()

        def run(texts):
            out = np.full((len(texts), 7), np.nan)
            for i, t in enumerate(texts):
                c = {x["class_name"]: x["confidence"] for x in sonar.ping(text=t)["classes"]}
                out[i, 0] = 1 - c["neither"]  # toxic: hateful or offensive
                out[i, 1] = c["hate_speech"]
            return out
        return run
    raise ValueError(engine)


def worker(args) -> dict:
    texts = json.loads(Path(args.texts_file).read_text())
    rss_before = peak_rss_mib()
    run = make_runner(args.worker, args)
    probs, times = timed(run, texts, args.repeats)
    p50, p99 = latencies(run, texts[: args.latency_n])
    np.save(Path(args.variants) / f"probs_{args.worker}.npy", np.asarray(probs, dtype=np.float64))
    return {"engine": args.worker, "n": len(texts), "seconds": times, "texts_per_s": len(texts) / statistics.median(times),
            "latency_ms_p50": p50, "latency_ms_p99": p99, "peak_rss_mib": peak_rss_mib(), "rss_before_engine_mib": rss_before}


def build_variants(checkpoint: Path, model_dir: Path, out: Path) -> None:
    """The non-shipped graphs, from the shipped package's checkpoint, as packages beside the shipped files."""
    from moderation.training.export import export_onnx, optimize_graph, quantize_dynamic_int8, quantize_int8_weights
    from moderation.training.policy import PolicyModel

    model = PolicyModel.load(checkpoint).eval()
    enc = model.bert().config
    export_onnx(model, out / "plain_fp32.onnx", int8_embeddings=False)
    optimize_graph(out / "plain_fp32.onnx", out / "fused_fp32.onnx", enc.num_attention_heads, enc.hidden_size)
    quantize_dynamic_int8(out / "fused_fp32.onnx", out / "int8_dynamic.onnx")
    export_onnx(model, out / "plain_int8emb.onnx", int8_embeddings=True)
    optimize_graph(out / "plain_int8emb.onnx", out / "fused_int8emb.onnx", enc.num_attention_heads, enc.hidden_size)
    quantize_int8_weights(out / "fused_int8emb.onnx", out / "int8_weights.onnx", block_size=32)
    for engine, graph in PACKAGE_ENGINES.items():
        if graph is None:
            continue
        pkg = out / engine
        shutil.copytree(model_dir, pkg, ignore=shutil.ignore_patterns("model.onnx", "export_report.json"))
        shutil.copyfile(out / graph, pkg / "model.onnx")  # manifest hashes no longer match: loaded with verify=False


def cpu_peak() -> dict:
    cores = os.cpu_count() or 1
    mhz = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                mhz = float(line.split(":")[1])
                break
    except OSError:
        pass
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    vnni = "avx512_vnni" in flags
    out = {"cores": cores, "reported_mhz": mhz, "avx512_vnni": vnni,
           "method": "cores x GHz x MACs/cycle x 2; INT8: 64 MACs/cycle (AVX-512 VNNI on two 256-bit pipes), "
                     "fp32: 16 FMAs/cycle (two 256-bit FMA pipes)"}
    for name, ghz in (("reported_clock", (mhz or 2600) / 1000), ("boost_3.7GHz", 3.7)):
        out[name] = {"ghz": ghz, "int8_tops": cores * ghz * 64 * 2 / 1000, "fp32_tflops": cores * ghz * 16 * 2 / 1000}
    return out


def quality(probs, y, m, names) -> dict:
    from moderation.training.evaluate import auprc

    cols = {}
    for j, c in enumerate(names):
        if np.isnan(probs[:, j]).all():
            cols[c] = None
            continue
        cols[c] = auprc(probs[:, [j]], y[:, [j]], m[:, [j]])[0]
    return cols


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--latency-n", type=int, default=200)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--model", default=str(ROOT / "models" / "default"))
    p.add_argument("--checkpoint", default=str(ROOT / "runs" / "sft-v2"))
    p.add_argument("--engines", nargs="+", default=ENGINES, choices=ENGINES)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "throughput.json"))
    p.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    p.add_argument("--texts-file", help=argparse.SUPPRESS)
    p.add_argument("--variants", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    import random

    from moderation.taxonomy import load_taxonomy
    from moderation.training.data import label_matrix, load_examples
    from moderation.windows import encode_windows, load_tokenizer

    # Only the non-shipped formats need the torch checkpoint (to build them); the package engines and the
    # peers run from the package alone, so two packages can be compared with `--engines runtime_int8 ...`.
    needs_variants = any(e not in ("runtime_int8", "runtime_int8_first_window", "profanity_check", "hatesonar")
                         for e in args.engines)
    if needs_variants and not (Path(args.checkpoint) / "policy_config.json").is_file():
        sys.exit(f"{args.checkpoint}: no policy checkpoint; train one (`moderate train sft`) or pass --checkpoint")
    names = load_taxonomy().names
    test = [e for e in load_examples(args.data_dir) if e.split == "test"]
    random.Random(0).shuffle(test)
    sample = test[: args.n]
    texts = [e.text for e in sample]
    y, m = label_matrix(sample, names)
    work = Path(tempfile.mkdtemp(prefix="throughput-"))
    (work / "texts.json").write_text(json.dumps(texts))
    print(f"building variants in {work}…", file=sys.stderr)
    if needs_variants:
        build_variants(Path(args.checkpoint), Path(args.model), work)

    tok = load_tokenizer(Path(args.model) / "tokenizer.json", 256, 64)
    first_window = [len(e.ids) for e in tok.encode_batch(texts)]
    t0 = time.perf_counter()
    from moderation.package import read_manifest
    from moderation.windows import sentence_mode

    windows = encode_windows(tok, texts, sentence_segments=sentence_mode(read_manifest(Path(args.model)).get("pooling", "mean")))
    tokenize_s = time.perf_counter() - t0
    ops = {"first_window": window_ops(first_window), "all_windows": window_ops([len(w) for w in windows.ids])}

    results = {}
    for engine in args.engines:
        print(f"running {engine}…", file=sys.stderr)
        cmd = [sys.executable, __file__, "--worker", engine, "--texts-file", str(work / "texts.json"), "--variants", str(work),
               "--repeats", str(args.repeats), "--latency-n", str(args.latency_n), "--threads", str(args.threads),
               "--model", args.model, "--checkpoint", args.checkpoint]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{engine} worker failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        probs = np.load(work / f"probs_{engine}.npy")
        r["auprc"] = quality(probs, y, m, names)
        if engine in ("torch_fp32_naive", "ort_fp32_naive", *FIRST_WINDOW):
            r["gops"] = ops["first_window"] / 1e9 * r["texts_per_s"] / len(texts)
        elif engine in PACKAGE_ENGINES:
            r["gops"] = ops["all_windows"] / 1e9 * r["texts_per_s"] / len(texts)
        results[engine] = r
        print(f"  {r['texts_per_s']:.1f} texts/s", file=sys.stderr)

    base = results.get("torch_fp32_naive")
    positives = {c: int(((y[:, j] == 1) & (m[:, j] == 1)).sum()) for j, c in enumerate(names)}
    for r in results.values():
        if base:
            r["ratio_to_naive_torch"] = r["texts_per_s"] / base["texts_per_s"]
            drops = {c: base["auprc"][c] - r["auprc"][c] for c in names
                     if r["auprc"][c] is not None and base["auprc"][c] is not None and positives[c] >= 10}
            r["auprc_drop_vs_baseline"] = drops
            r["max_auprc_drop"] = max(drops.values()) if drops else None
        ref = results.get("ort_fp32")
        if ref and r["engine"] in PACKAGE_ENGINES:  # what quantization alone costs (same pipeline, fp32 graph)
            drops = {c: ref["auprc"][c] - r["auprc"][c] for c in names if r["auprc"][c] is not None and positives[c] >= 10}
            r["max_auprc_drop_vs_ort_fp32"] = max(drops.values()) if drops else None
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                          "python": platform.python_version(), "peak_estimate": cpu_peak()},
              "n_texts": len(texts), "repeats": args.repeats, "positives": positives,
              "tokens": {"first_window": int(sum(first_window)), "all_windows": int(sum(len(w) for w in windows.ids)),
                         "windows": len(windows.ids)},
              "tokenize_and_normalise_seconds": tokenize_s, "ops_per_pass_gop": {k: v / 1e9 for k, v in ops.items()},
              "engines": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    Path(args.out).with_suffix(".md").write_text(table(report))
    print(table(report))
    shutil.rmtree(work, ignore_errors=True)


def table(report: dict) -> str:
    peak = report["machine"]["peak_estimate"]
    lines = ["| engine | texts/s | × baseline | p50 ms | p99 ms | peak RSS MiB | GOPS | max AUPRC loss vs baseline | vs ort_fp32 | AUPRC toxic / hate / violence |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["engines"].values():
        a = r["auprc"]

        def f(x, fmt="{:.3f}"):
            return "—" if x is None else fmt.format(x)

        lines.append(f"| {r['engine']} | {r['texts_per_s']:.1f} | {f(r.get('ratio_to_naive_torch'), '{:.2f}x')} | "
                     f"{r['latency_ms_p50']:.1f} | {r['latency_ms_p99']:.1f} | {r['peak_rss_mib']:.0f} | {f(r.get('gops'), '{:.0f}')} | "
                     f"{f(r.get('max_auprc_drop'), '{:+.4f}')} | {f(r.get('max_auprc_drop_vs_ort_fp32'), '{:+.4f}')} | {f(a['toxic'])} / {f(a['hate'])} / {f(a['violence'])} |")
    rc, boost = peak["reported_clock"], peak["boost_3.7GHz"]
    lines += ["", f"{report['n_texts']} test texts, {report['tokens']['first_window']} tokens truncated at 256 "
              f"({report['ops_per_pass_gop']['first_window']:.0f} GOP) or {report['tokens']['all_windows']} tokens in "
              f"{report['tokens']['windows']} windows and sentences ({report['ops_per_pass_gop']['all_windows']:.0f} GOP) for the runtime; "
              f"tokenising and normalising all of them: {report['tokenize_and_normalise_seconds']:.2f} s. "
              f"Estimated peak ({peak['cores']} cores): INT8 {rc['int8_tops']:.2f} TOPS at the reported {rc['ghz']:.2f} GHz, "
              f"{boost['int8_tops']:.2f} at 3.7 GHz; fp32 {rc['fp32_tflops'] * 1000:.0f}–{boost['fp32_tflops'] * 1000:.0f} GFLOPS."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
