"""The review quickstart of README, run as a new user would, step by step, with each step timed.

    .venv/bin/python scripts/review_quickstart.py            # prints each step's output, then the timings
    .venv/bin/python scripts/review_quickstart.py --json benchmarks/results/review_quickstart.json

serve -> push a small queue -> open the printed URL -> simulate -> pull -> stats -> stop, through the real
`moderate` command in subprocesses. It uses its own Label Studio data folder and a free port, so it never
touches data/labelstudio; the feedback store goes to a temporary folder too. Exit code: 0 when every step
succeeded and printed what a person needs next.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labeling.server import free_port  # noqa: E402


def run_step(name: str, args: list[str], timings: dict, outputs: dict) -> str:
    print(f"\n$ moderate {' '.join(args)}", flush=True)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "import cli; cli.main()", *args], cwd=ROOT, capture_output=True, text=True)
    timings[name] = round(time.perf_counter() - t, 1)
    text = proc.stdout + proc.stderr
    # tqdm redraws its bar with carriage returns; keep the last state of each line for the log
    shown = "\n".join(line.split("\r")[-1] for line in text.split("\n"))
    print(shown, flush=True)
    outputs[name] = shown
    if proc.returncode != 0:
        raise SystemExit(f"step {name!r} failed with exit code {proc.returncode}")
    return shown


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=30, help="tasks to push")
    p.add_argument("--json", type=Path, help="write the timings here")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="review-quickstart-"))
    ls = ["--ls-dir", str(work / "labelstudio")]
    store = ["--store", str(work / "feedback")]
    project = ["--project", "Quickstart"]
    timings: dict[str, float] = {}
    outputs: dict[str, str] = {}
    started = time.perf_counter()
    try:
        out = run_step("serve", ["review", "serve", *ls, "--port", str(free_port())], timings, outputs)
        url = re.search(r"up at (http://\S+)", out).group(1)
        out = run_step("push", ["review", "push", "--n", str(args.n), "--only-simulatable", *project, *ls], timings, outputs)
        task_url = re.search(r"review them at (http://\S+)", out).group(1)
        t = time.perf_counter()
        opened = httpx.get(task_url, follow_redirects=True, timeout=30)  # a browser would land on the login page
        timings["open"] = round(time.perf_counter() - t, 1)
        print(f"\nopened {task_url}: HTTP {opened.status_code} ({opened.url.path})")
        if opened.status_code != 200:
            raise SystemExit(f"the printed URL answered {opened.status_code}")
        run_step("simulate", ["review", "simulate", *project, *ls], timings, outputs)
        run_step("pull", ["review", "pull", *project, *ls, *store], timings, outputs)
        run_step("stats", ["review", "stats", *store], timings, outputs)
    finally:
        if "serve" in timings:
            run_step("stop", ["review", "stop", *ls], timings, outputs)
    total = round(time.perf_counter() - started, 1)
    print(f"\nquickstart finished in {total} s: " + ", ".join(f"{k} {v} s" for k, v in timings.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"n": args.n, "total_seconds": total, "seconds": timings}, indent=2) + "\n")


if __name__ == "__main__":
    main()
