"""Scans at scale: the repeat cache and `--engine ray` (a real Ray instance in local mode)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from moderation.runtime import Moderator
from moderation.scan import ScoreCache
from tests.conftest import ROOT

TEXTS = ["have a good one", "I will hurt you", "win cash now, text WIN to 80086", "you are an idiot", "see you at 10am"]


def test_cache_gives_the_uncached_scores_and_counts_repeats(tiny_package):
    mod = Moderator.load(tiny_package)
    texts = [TEXTS[i % len(TEXTS)] for i in range(37)] + ["a fresh one"]
    cache = ScoreCache(max_entries=100)
    first = cache.score(mod, texts[:20])
    again = cache.score(mod, texts)
    np.testing.assert_allclose(first, mod.score(texts[:20]), atol=1e-6)
    np.testing.assert_allclose(again, mod.score(texts), atol=1e-6)
    assert cache.misses == len(TEXTS) + 1  # every distinct text went to the model exactly once
    assert cache.hits == 20 + 38 - cache.misses


def test_cache_is_bounded(tiny_package):
    mod = Moderator.load(tiny_package)
    cache = ScoreCache(max_entries=3)
    cache.score(mod, [f"text number {i}" for i in range(10)])
    assert len(cache._rows) == 3
    cache.score(mod, ["text number 9"])  # the most recent survive
    assert cache.hits == 1
    with pytest.raises(ValueError, match="cache size"):
        ScoreCache(-1)


def test_token_budget_batches_cover_every_window_once():
    from moderation.windows import Windows, length_sorted_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 257, size=500)
    windows = Windows(ids=[np.zeros(n, dtype=np.int64) for n in lengths], owner=np.arange(500))
    batches = length_sorted_batches(windows, 32, max_tokens=2048)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    for b in batches:
        assert len(b) <= 32 and (len(b) == 1 or len(b) * lengths[b].max() <= 2048)
    assert max(len(b) for b in batches) == 32 and min(len(b) for b in batches[:-1]) == 2048 // 256


def _scan(args, cwd):
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), "scan", *args, "--no-progress"], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=600)


def test_ray_engine_writes_what_the_local_engine_writes(tmp_path, tiny_package):
    pytest.importorskip("ray.data")
    lines = []
    for i in range(700):
        if i % 97 == 13:
            lines.append('{"id": "broken", "text": ')  # invalid JSON: an errors-file entry naming line i+1
        elif i % 101 == 7:
            lines.append(json.dumps({"id": f"n{i}", "body": "no text field"}))
        elif i % 89 == 3:
            lines.append('{"id": "s%d", "text": "lone surrogate \\ud800 here"}' % i)  # valid JSON, invalid Unicode
        else:
            lines.append(json.dumps({"id": f"t{i}", "text": f"{TEXTS[i % len(TEXTS)]} #{i % 50}"}))
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    common = [str(src), "--model", str(tiny_package), "--on-error", "skip", "--threads", "1"]
    local = _scan([*common, "--out", str(tmp_path / "local.jsonl")], tmp_path)
    assert local.returncode == 3, local.stderr[-2000:]  # done, with skipped items
    ray = _scan([*common, "--out", str(tmp_path / "ray.jsonl"), "--engine", "ray", "--workers", "2"], tmp_path)
    assert ray.returncode == 3, ray.stderr[-3000:]
    local_rows = (tmp_path / "local.jsonl").read_bytes()
    assert local_rows.count(b"\n") == 700 - 8 - 7
    assert (tmp_path / "ray.jsonl").read_bytes() == local_rows
    assert (tmp_path / "ray.jsonl.errors.jsonl").read_bytes() == (tmp_path / "local.jsonl.errors.jsonl").read_bytes()

    # resume on Ray: a run killed mid-row leaves half a line; --resume finishes it exactly once
    cut = local_rows[: local_rows.index(b"\n", len(local_rows) // 2) + 40]
    (tmp_path / "ray.jsonl").write_bytes(cut)
    again = _scan([*common, "--out", str(tmp_path / "ray.jsonl"), "--engine", "ray", "--workers", "1", "--resume"], tmp_path)
    assert again.returncode == 3, again.stderr[-3000:]
    assert "resuming after input line" in again.stderr
    assert (tmp_path / "ray.jsonl").read_bytes() == local_rows


def test_ray_engine_refuses_stdin(tiny_package, tmp_path):
    pytest.importorskip("ray.data")
    out = _scan(["-", "--model", str(tiny_package), "--engine", "ray"], tmp_path)
    assert out.returncode == 2 and "reads files, not stdin" in out.stderr
