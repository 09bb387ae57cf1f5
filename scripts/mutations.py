"""Apply the deliberate mutations a code review found surviving the suite, one at a time, and check that the
tests now notice each one (a mutation is "killed" when the named tests fail with it in place).

    .venv/bin/python scripts/mutations.py                      # all, report on stdout
    .venv/bin/python scripts/mutations.py --json benchmarks/results/mutations_named.json

Each mutation is a plain text replacement in one file; the file is restored afterwards even on Ctrl-C.
The broader, tool-generated mutation run is `scripts/mutation_report.py` (mutmut).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: list[str]


MUTATIONS = [
    Mutation("review threshold equal to the block threshold", "moderation/training/evaluate.py",
             "        review.append(float(r))", "        review.append(float(b))",
             ["tests/test_training_set.py", "tests/test_core_behaviour.py"]),
    Mutation("reward-hacking stop disabled", "moderation/training/rl.py",
             "            if guard.update(ev):", "            if False:",
             ["tests/test_rlhf.py::test_rl_stops_when_the_reward_model_and_the_reviewers_disagree"]),
    Mutation("reward-hacking guard never fires", "moderation/training/rl.py",
             "        return self.bad >= self.patience", "        return False",
             ["tests/test_core_behaviour.py", "tests/test_rlhf.py::test_rl_stops_when_the_reward_model_and_the_reviewers_disagree"]),
    Mutation("PPO clip removed", "moderation/training/rl.py",
             "    pg = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()", "    pg = -(ratio * adv).mean()",
             ["tests/test_core_behaviour.py"]),
    Mutation("KL term removed from the RL loss", "moderation/training/rl.py",
             "    return pg + kl_beta * kl, pg, kl", "    return pg, pg, kl",
             ["tests/test_core_behaviour.py"]),
    Mutation("reward anchor removed", "moderation/training/reward.py",
             "            (loss + cfg.anchor * anchor).backward()", "            loss.backward()",
             ["tests/test_core_behaviour.py"]),
    Mutation("disagreement queue in random order", "labeling/queue.py",
             "        order = np.argsort(-np.asarray(spread) + 1e-9 * margin, kind=\"stable\")",
             "        order = rng.permutation(len(items))",
             ["tests/test_core_behaviour.py", "tests/test_review.py::test_strategies_pick_what_they_promise"]),
    Mutation("_merge keeps the last duplicate instead of averaging", "moderation/training/data.py",
             "        a.labels[c] = vb if va is None else (va + vb) / 2", "        a.labels[c] = vb",
             ["tests/test_core_behaviour.py"]),
    Mutation("micro-batcher's per-request fallback removed", "moderation/serve.py",
             "                        result = await loop.run_in_executor(self.pool, self.score_fn, job)",
             "                        raise RuntimeError('batch failed')",
             ["tests/test_core_behaviour.py"]),
]


def run(m: Mutation) -> dict:
    path = ROOT / m.path
    original = path.read_text()
    if original.count(m.old) != 1:
        return {"name": m.name, "status": "stale", "why": f"the code to mutate is not in {m.path} exactly once"}
    t = time.perf_counter()
    try:
        path.write_text(original.replace(m.old, m.new))
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *m.tests], cwd=ROOT,
                              capture_output=True, text=True, timeout=1200)
    finally:
        path.write_text(original)
    failed = [line.split(" ")[1] for line in proc.stdout.splitlines() if line.startswith("FAILED ")]
    return {"name": m.name, "file": m.path, "status": "killed" if proc.returncode != 0 else "survived",
            "failing_tests": failed, "seconds": round(time.perf_counter() - t, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    results = []
    for m in MUTATIONS:
        r = run(m)
        results.append(r)
        print(f"{r['status']:8s} {m.name}" + (f"  ({', '.join(r.get('failing_tests', [])[:2])})" if r.get("failing_tests") else ""),
              flush=True)
    killed = sum(r["status"] == "killed" for r in results)
    print(f"{killed}/{len(results)} killed")
    if args.json:
        args.json.write_text(json.dumps({"killed": killed, "total": len(results), "mutations": results}, indent=2) + "\n")
    if killed < len(results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
