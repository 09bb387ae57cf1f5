"""Mutation testing of the core modules with mutmut, summarised per module.

    MODERATION_TEST_LABEL_STUDIO=$(mktemp -d) MODERATION_TEST_CACHE=$(mktemp -d) MODERATION_DATA_DIR=$(realpath ../shared/datasets) .venv/bin/mutmut run --max-children 2   # hours on 2 cores
    .venv/bin/python scripts/mutation_report.py --json benchmarks/results/mutation_report.json

The modules and the (fast) tests mutmut runs are configured in pyproject.toml, [tool.mutmut]. This script
reads mutmut's result files under mutants/ and counts, per module: killed (a test failed), survived (tests
passed with the mutation in place), no tests (no selected test reaches the mutated function), timeout.
Kill rate = killed / checked mutants (no-test mutants count as not killed; a timeout — the tests did not finish
with the mutation in place — counts as detected only in `detected_rate`). Mutants mutmut has not run yet are
reported as `not_checked` and left out of the rates. Not part of CI: too slow.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def results() -> dict[str, str]:
    """mutant name -> status, from `mutmut results --all true`."""
    proc = subprocess.run([str(Path(sys.executable).parent / "mutmut"), "results", "--all", "true"], cwd=ROOT,
                          capture_output=True, text=True)
    out = {}
    for line in proc.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name:
            out[name] = status.strip()
    return out


def module_of(mutant: str) -> str:
    """'moderation.training.rl.x_ppo_loss__mutmut_3' -> 'moderation/training/rl.py'."""
    parts = mutant.split(".")
    mod = []
    for p in parts:
        if p.startswith("x_") or p.startswith("xǁ"):
            break
        mod.append(p)
    return "/".join(mod) + ".py"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="write the per-module summary here")
    args = p.parse_args()
    status = results()
    if not status:
        raise SystemExit("no mutmut results: run `mutmut run` first (see this script's docstring)")
    per: dict[str, Counter] = defaultdict(Counter)
    for name, s in status.items():
        per[module_of(name)][s] += 1
    rows = {}
    print(f"{'module':34s} {'mutants':>7s} {'checked':>7s} {'killed':>7s} {'survived':>8s} {'no tests':>8s} {'timeout':>7s} {'kill rate':>9s}")
    for mod in sorted(per):
        c = per[mod]
        total = sum(c.values())
        checked = total - c.get("not checked", 0)
        killed = c.get("killed", 0)
        rows[mod] = {"mutants": total, "checked": checked, "killed": killed, "survived": c.get("survived", 0),
                     "no_tests": c.get("no tests", 0), "timeout": c.get("timeout", 0), "not_checked": c.get("not checked", 0),
                     "kill_rate": round(killed / checked, 3) if checked else None,
                     "detected_rate": round((killed + c.get("timeout", 0)) / checked, 3) if checked else None}
        r = rows[mod]
        rate = f"{r['kill_rate']:9.1%}" if checked else f"{'—':>9s}"
        print(f"{mod:34s} {total:7d} {checked:7d} {killed:7d} {r['survived']:8d} {r['no_tests']:8d} {r['timeout']:7d} {rate}")
    checked = sum(r["checked"] for r in rows.values())
    killed = sum(r["killed"] for r in rows.values())
    total = sum(r["mutants"] for r in rows.values())
    print(f"{'all':34s} {total:7d} {checked:7d} {killed:7d} {'':8s} {'':8s} {'':7s} {killed / max(1, checked):9.1%}")
    if args.json:
        args.json.write_text(json.dumps({"tool": "mutmut", "command": "mutmut run --max-children 2 (pyproject [tool.mutmut])",
                                         "modules": rows, "total": total, "checked": checked, "killed": killed,
                                         "kill_rate": round(killed / max(1, checked), 3)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
