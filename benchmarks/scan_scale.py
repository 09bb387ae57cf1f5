"""Scans of any size at flat memory: `moderate scan` on 100k and 1M lines, what resume-safety costs, the cache.

    .venv/bin/python benchmarks/scan_scale.py [--lines 100000 1000000] [--model models/default]

Inputs are built by repeating the test split's texts (shuffled anew each round) into JSONL files in a
temporary folder: 7,459 distinct texts, so after the first round every line is a repeat, which the scan's
bounded repeat cache answers without the model. That is how the 1M-line run finishes in minutes on two
cores; the uncached rate (each line scored by the model) is measured separately on distinct texts, and the
1M-line time at that rate is extrapolated, not run. Each scan is the real CLI in a subprocess; its peak
RSS is polled from /proc every 0.2 s. "Resume cost": the same scan with `--fsync` (the default: every chunk
is on disk before the next is read, so `--resume` loses nothing) and `--no-fsync`, alternating, median of
--repeats; and the fsync call itself, timed directly.
Results: benchmarks/results/scan_scale.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build_input(path: Path, texts: list[str], lines: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < lines:
            order = list(range(len(texts)))
            rng.shuffle(order)
            for i in order[: lines - written]:
                f.write(json.dumps({"id": f"c{written}", "text": texts[i]}, ensure_ascii=False) + "\n")
                written += 1


def run_scan(src: Path, out: Path, *extra: str) -> dict:
    cmd = [sys.executable, str(ROOT / "cli.py"), "scan", str(src), "--out", str(out), "--no-progress", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    seconds = time.perf_counter() - t0
    err = proc.stderr.read()
    if proc.returncode != 0:
        sys.exit(f"scan failed ({proc.returncode}): {err[-2000:]}")
    rows = sum(1 for _ in open(out, encoding="utf-8"))
    cache = next((line for line in err.splitlines() if line.startswith("cache:")), None)
    return {"seconds": seconds, "rows": rows, "lines_per_s": rows / seconds, "peak_rss_mib": peak / 1024, "cache": cache}


def fsync_cost_ms(path: Path, chunk_bytes: int = 256 * 250, n: int = 50) -> float:
    """Median time of one fsync after writing one chunk of result rows (~250 bytes x 256): the whole of what
    resume-safety adds per chunk, measured directly because whole-scan medians are noisier than it."""
    import os

    times = []
    with open(path, "w") as f:
        for _ in range(n):
            f.write("x" * chunk_bytes)
            f.flush()
            t0 = time.perf_counter()
            os.fsync(f.fileno())
            times.append(time.perf_counter() - t0)
    path.unlink()
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, nargs="*", default=[100_000, 1_000_000],
                    help="input sizes; none (`--lines` alone) measures only the uncached rate and resume cost, keeping "
                         "the sizes already in --out")
    ap.add_argument("--distinct", type=int, default=5000, help="distinct texts for the uncached rate and its resume cost")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default=str(ROOT / "models" / "default"))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scan_scale.json")
    ap.add_argument("--fsync-probe", action="store_true", help="only time fsync per chunk and add it to an existing --out JSON")
    args = ap.parse_args()
    if args.fsync_probe:
        report = json.loads(args.out.read_text())
        d = report["resume_cost"]
        d["fsync_ms_per_chunk"] = fsync_cost_ms(args.out.parent / ".fsync-probe")
        d["fsync_share_of_uncached_scan"] = d["fsync_ms_per_chunk"] / 1000 / (256 / d["distinct--fsync"]["lines_per_s"])
        args.out.write_text(json.dumps(report, indent=2))
        print(f"fsync per chunk: {d['fsync_ms_per_chunk']:.3f} ms = {d['fsync_share_of_uncached_scan']:.4%} of an uncached scan")
        return

    from moderation.training.data import load_examples

    texts = [e.text for e in load_examples(args.data_dir) if e.split == "test"]
    work = Path(tempfile.mkdtemp(prefix="scan-scale-"))
    model = ["--model", args.model]
    report = {"distinct_texts": len(texts), "sizes": {}, "resume_cost": {}}
    if not args.lines and args.out.is_file():  # partial rerun: keep the earlier size runs and their resume cost
        earlier = json.loads(args.out.read_text())
        report["sizes"] = earlier.get("sizes", {})
        report["resume_cost"] = {k: v for k, v in earlier.get("resume_cost", {}).items() if k.startswith("cached_")}

    # Model-bound rate: distinct texts, no cache; with and without fsync per chunk.
    distinct = work / "distinct.jsonl"
    build_input(distinct, texts, min(args.distinct, len(texts)))
    interleaved = {"--fsync": [], "--no-fsync": []}
    for _ in range(args.repeats):  # alternate the settings, so drift between runs hits both alike
        for mode in interleaved:
            interleaved[mode].append(run_scan(distinct, work / "out.jsonl", *model, "--cache-size", "0", mode))
    for mode, runs in interleaved.items():
        report["resume_cost"][f"distinct{mode}"] = {"seconds": [r["seconds"] for r in runs],
                                                    "median_s": statistics.median(r["seconds"] for r in runs),
                                                    "lines_per_s": runs[0]["rows"] / statistics.median(r["seconds"] for r in runs),
                                                    "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}
        print(f"distinct {mode}: {report['resume_cost'][f'distinct{mode}']['lines_per_s']:.1f} lines/s", file=sys.stderr)
    uncached = report["resume_cost"]["distinct--fsync"]["lines_per_s"]

    for n in args.lines:
        src = work / f"in_{n}.jsonl"
        build_input(src, texts, n)
        r = run_scan(src, work / "out.jsonl", *model)
        r["input_mib"] = src.stat().st_size / 2**20
        r["uncached_extrapolated_s"] = n / uncached
        report["sizes"][str(n)] = r
        print(f"{n} lines: {r['seconds']:.0f} s, {r['lines_per_s']:.0f} lines/s, peak RSS {r['peak_rss_mib']:.0f} MiB; {r['cache']}",
              file=sys.stderr)
        if n == min(args.lines):  # fsync cost where it is largest relative to the work: cache-bound lines
            runs = {"--fsync": [], "--no-fsync": []}
            for _ in range(args.repeats):
                for m in runs:
                    runs[m].append(run_scan(src, work / "out.jsonl", *model, m)["seconds"])
            report["resume_cost"][f"cached_{n}"] = {m: {"seconds": v, "median_s": statistics.median(v)} for m, v in runs.items()}
        src.unlink()
    for key, v in report["resume_cost"].items():
        if key.startswith("distinct"):
            continue
        v["overhead"] = v["--fsync"]["median_s"] / v["--no-fsync"]["median_s"] - 1
    d = report["resume_cost"]
    d["fsync_ms_per_chunk"] = fsync_cost_ms(work / "fsync-probe")
    d["fsync_share_of_uncached_scan"] = d["fsync_ms_per_chunk"] / 1000 / (256 / uncached)
    d["distinct_overhead"] = d["distinct--fsync"]["median_s"] / d["distinct--no-fsync"]["median_s"] - 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
