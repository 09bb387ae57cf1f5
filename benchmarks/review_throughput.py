"""Review round trip against a real Label Studio: push N tasks, simulate reviews, pull N annotations.

    .venv/bin/python benchmarks/review_throughput.py [--n 1000] [--model models/default]

Starts its own Label Studio in a temp folder on a free loopback port (stopped at the end). Times:
  push      choose N items (uncertainty) and import them with K=4 proposals as predictions (target <= 10 s)
  simulate  N annotations by 3 simulated reviewers through annotations.create (the per-annotation API)
  pull      full export with predictions, validation, into a fresh feedback store (target <= 30 s)
Also reports Krippendorff's alpha of the simulated reviewers on a subset reviewed twice.
Results: benchmarks/results/review_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labeling.annotations import agreement, export_tasks, tasks_to_judgments, throughput  # noqa: E402
from labeling.client import connect  # noqa: E402
from labeling.queue import QueueItem, ensure_project, push, select  # noqa: E402
from labeling.server import free_port, start, stop  # noqa: E402
from labeling.simulate import simulatable_examples, simulate  # noqa: E402
from moderation.feedback import FeedbackStore  # noqa: E402
from moderation.runtime import Moderator  # noqa: E402
from moderation.training.data import load_examples  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--double", type=int, default=200, help="items reviewed by two reviewers (for alpha)")
    p.add_argument("--model", default=str(ROOT / "models" / "default"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "review_throughput.json"))
    args = p.parse_args()

    mod = Moderator.load(args.model)
    examples = load_examples(taxonomy=mod.taxonomy)
    pool = [e for e in examples if e.annotators and e.split == "train"][: args.n * 3]
    items = [QueueItem(e.id, e.text, s, e.source) for e, s in zip(pool, mod.score([e.text for e in pool]))]
    root = Path(tempfile.mkdtemp(prefix="ls-bench-"))
    results = {"n": args.n}
    try:
        t0 = time.perf_counter()
        creds = start(root, port=free_port(), log=lambda m: print(m, file=sys.stderr))
        results["server_start_s"] = time.perf_counter() - t0
        client = connect(creds)
        project = ensure_project(client, creds.url, "benchmark", mod.taxonomy)
        t0 = time.perf_counter()
        chosen = select(items, args.n, "uncertainty", mod.review_thresholds)
        pushed = push(client, creds.url, project.id, chosen, mod.taxonomy, mod.version, mod.review_thresholds, k=4)
        results["push_s"] = time.perf_counter() - t0
        results["pushed"] = pushed["created"]
        sim = simulatable_examples(examples)
        t0 = time.perf_counter()
        done = simulate(client, creds.url, project.id, sim, mod.taxonomy, reviewers=3, per_item=1)
        results["simulate_s"] = time.perf_counter() - t0
        results["simulated_annotations"] = done["annotations"]
        if args.double:
            second = ensure_project(client, creds.url, "benchmark-agreement", mod.taxonomy)
            push(client, creds.url, second.id, chosen[: args.double], mod.taxonomy, mod.version, mod.review_thresholds)
            simulate(client, creds.url, second.id, sim, mod.taxonomy, reviewers=3, per_item=2)
            js, _ = tasks_to_judgments(export_tasks(client, creds.url, second.id), mod.taxonomy)
            results["alpha_simulated_reviewers"] = agreement(js, mod.taxonomy.names)
        t0 = time.perf_counter()
        tasks = export_tasks(client, creds.url, project.id)
        judgments, rejected = tasks_to_judgments(tasks, mod.taxonomy)
        store = FeedbackStore(root / "feedback", mod.taxonomy.names)
        new = store.add(judgments)
        results["pull_s"] = time.perf_counter() - t0
        results["pulled_annotations"] = new
        results["rejected"] = len(rejected)
        results["preference_pairs"] = len(store.pairs())
        results["throughput"] = throughput(judgments)
    finally:
        stop(root)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
