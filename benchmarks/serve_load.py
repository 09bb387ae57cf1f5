"""Load on `moderate serve`: N concurrent clients on loopback for a bounded time.

    .venv/bin/python benchmarks/serve_load.py [--model models/default] [--clients 1 8 32] [--seconds 20]

Starts the server as its own process (as users run it), then for each concurrency level runs that many
clients, each sending one-text requests back to back (test-split texts, real lengths) until the time is
up. Reports requests/s, p50/p99 latency, errors (target: zero) and the server's RSS before and after.
For scale, the same texts are scored in one batch call in this process (`Moderator.score`, the batch
throughput micro-batching tries to approach). Results: benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(url: str, texts: list[str], clients: int, seconds: float, token: str) -> dict:
    import httpx

    latencies, errors, done = [], 0, 0
    stop_at = time.perf_counter() + seconds

    async def client(k: int, http: httpx.AsyncClient) -> None:
        nonlocal errors, done
        i = k
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                r = await http.post(f"{url}/v1/moderations", json={"input": texts[i % len(texts)]})
                ok = r.status_code == 200 and len(r.json()["results"]) == 1
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t0)
            errors += 0 if ok else 1
            done += 1
            i += clients

    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(k, http) for k in range(clients)))
        elapsed = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {"clients": clients, "requests": done, "errors": errors, "seconds": round(elapsed, 2),
            "requests_per_s": round(done / elapsed, 1), "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models/default")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/serve_load.json")
    args = ap.parse_args()

    import httpx

    from labeling.server import free_port
    from moderation.runtime import Moderator
    from moderation.training.data import load_examples

    test = [e.text for e in load_examples(None, seed=0) if e.split == "test"]
    texts = [test[i] for i in np.random.default_rng(0).choice(len(test), min(args.texts, len(test)), replace=False)]
    port = args.port or free_port()
    token = os.urandom(12).hex()
    env = {**os.environ, "MODERATION_API_TOKEN": token}
    proc = subprocess.Popen([sys.executable, "-c", "import cli; cli.main()", "serve", "--model", str(args.model), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        rss_before = rss_mib(proc.pid)
        rows = []
        for c in args.clients:
            row = asyncio.run(load(url, texts, c, args.seconds, token))
            row["server_rss_mib"] = round(rss_mib(proc.pid), 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
        rss_after = rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    mod = Moderator.load(args.model)
    mod.score(texts[:64])
    t0 = time.perf_counter()
    mod.score(texts)
    batch_tps = len(texts) / (time.perf_counter() - t0)
    result = {"model": str(args.model), "texts": len(texts), "seconds_per_level": args.seconds, "levels": rows,
              "server_rss_mib_before": round(rss_before, 1), "server_rss_mib_after": round(rss_after, 1),
              "batch_texts_per_s_in_process": round(batch_tps, 1),
              "best_requests_per_s_vs_batch": round(max(r["requests_per_s"] for r in rows) / batch_tps, 3),
              "cpu_count": os.cpu_count(), "command": "benchmarks/serve_load.py " + " ".join(sys.argv[1:])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "levels"}, indent=2))


if __name__ == "__main__":
    main()
