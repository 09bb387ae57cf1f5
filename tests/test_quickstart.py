"""README's review quickstart, end to end with a fresh Label Studio: serve -> push -> open -> simulate -> pull ->
stats -> stop, each step printing what a person needs next."""

import subprocess
import sys

from tests.conftest import ROOT


def test_review_quickstart_runs_and_every_step_says_what_next(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "review_quickstart.py"), "--n", "12",
                           "--json", str(tmp_path / "timings.json")], cwd=ROOT, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert "next: moderate review push" in out  # after serve
    assert "review them at http://127.0.0.1:" in out and "then: moderate review pull" in out  # after push
    assert "scoring candidates" in out and "random pool of" in out
    assert ": HTTP 200" in out  # the printed URL opens (the login page)
    assert "simulated review(s) submitted; next: moderate review pull" in out
    assert "Krippendorff's alpha" in out and "stopped" in out
    import json

    timings = json.loads((tmp_path / "timings.json").read_text())
    assert set(timings["seconds"]) >= {"serve", "push", "open", "simulate", "pull", "stats", "stop"}
