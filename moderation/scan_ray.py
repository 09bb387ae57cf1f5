"""`moderate scan --engine ray`: the same scan, with scoring spread over a Ray Data actor pool.

    read (one Ray task per input file: our readers, so formats, line numbers and bad-item reasons are
          exactly the local engine's)
      -> map_batches(Scorer, ActorPoolStrategy(size=workers)): each actor loads the model package once
         (one ONNX Runtime session per actor) and scores its batches, with its own repeat cache
      -> write on the driver, in input order (preserve_order), through the local engine's Scanner: one
         output file, identical rows, the same errors file, progress bar, fsync per chunk and --resume.

Why the driver writes: the output must be one ordered, resumable file, and writing costs ~1% of scoring.
Scoring, the 99%, is what scales out. On a cluster (`--ray-address auto`), the input file and the model
package must be readable at the same path on every node (shared storage), or the model shipped with
`ray job submit --working-dir`. Ray is an optional extra: pip install 'moderation-rlhf[ray]'.
Runtime path: no torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

import numpy as np

from moderation.runtime import Moderator
from moderation.scan import BadItem, Item, ResultWriter, ScanError, Scanner, ScanSummary, ScoreCache, read_items

BLOCK_ROWS = 1024  # rows per block the reader yields: small enough to stream, large enough to batch well


def _pack(s: str) -> bytes:
    """Arrow strings reject lone surrogates (valid JSON can carry them); bytes round-trip everything."""
    return s.encode("utf-8", "surrogatepass")


def _unpack(b: bytes) -> str:
    return b.decode("utf-8", "surrogatepass")


def _rows_to_block(rows: list[dict]):
    import pyarrow as pa

    return pa.table({
        "line": pa.array([r["line"] for r in rows], pa.int64()),
        "id": pa.array([r["id"] for r in rows], pa.binary()),
        "text": pa.array([r["text"] for r in rows], pa.binary()),
        "bad": pa.array([r["bad"] for r in rows], pa.string()),  # the reason; "" for a good item (nulls turn into nan)
    })


def _datasource(path: str, fmt: str, text_field: str, id_field: str | None, start_after: int):
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class ScanInput(Datasource):
        def estimate_inmemory_data_size(self):
            return None

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            def read():
                rows = []
                for entry in read_items(path, fmt, text_field=text_field, id_field=id_field):
                    if entry.line <= start_after:
                        continue
                    if isinstance(entry, BadItem):
                        rows.append({"line": entry.line, "id": b"", "text": _pack(entry.raw), "bad": entry.reason})
                    else:
                        rows.append({"line": entry.line, "id": _pack(entry.id), "text": _pack(entry.text), "bad": ""})
                    if len(rows) >= BLOCK_ROWS:
                        yield _rows_to_block(rows)
                        rows = []
                if rows:
                    yield _rows_to_block(rows)

            # One task per file: line numbers need the file read in order. Parallelism is in the scoring.
            meta = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None,
                                 input_files=[path] if path != "-" else None)
            return [ReadTask(read, meta)]

    return ScanInput()


class Scorer:
    """One per Ray actor: the model package loaded once, then batches of rows in, scores out."""

    def __init__(self, model_dir: str, threads: int | None, batch_size: int, max_chars: int, max_windows, normalize: bool,
                 cache_size: int, platform: str | None = None):
        self.moderator = Moderator.load(model_dir, threads=threads, batch_size=batch_size, max_chars=max_chars,
                                        max_windows=max_windows, normalize=normalize, platform=platform)
        self.cache = ScoreCache(cache_size)

    def __call__(self, batch: dict) -> dict:
        n = len(batch["line"])
        scores = np.zeros((n, len(self.moderator.categories)), dtype=np.float32)
        texts = {i: _unpack(batch["text"][i]) for i in range(n) if not batch["bad"][i]}
        good = [i for i, t in texts.items() if len(t) <= self.moderator.max_chars]  # the driver rejects the rest
        if good:
            scores[good] = self.cache.score(self.moderator, [texts[i] for i in good])
        batch["scores"] = scores
        return batch


def _init_ray(address: str | None):
    try:
        import ray
    except ImportError:
        raise ScanError("--engine ray needs Ray Data: pip install 'moderation-rlhf[ray]'") from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from a moderation box
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    return ray


def scan_with_ray(moderator: Moderator, path: str, fmt: str, writer: ResultWriter, *, text_field: str = "text",
                  id_field: str | None = "id", workers: int | None = None, threads: int | None = None,
                  address: str | None = None, on_error: str = "fail", errors_stream: TextIO | None = None,
                  only_flagged: bool = False, chunk_size: int = 256, source: str = "input", progress: bool = True,
                  start_after: int = 0, durable: bool = False, cache_size: int = 100_000) -> ScanSummary:
    """Like moderation.scan.scan, with the scoring on `workers` Ray actors (each `threads` ONNX threads).

    `moderator` is the driver's copy: its package is what the actors load, and it turns scores into
    decisions. Output rows, errors and the summary are the local engine's."""
    if path == "-":
        raise ScanError("--engine ray reads files, not stdin; pass a path (or use the local engine)")
    ray = _init_ray(address)
    from ray.data import ActorPoolStrategy, DataContext

    ctx = DataContext.get_current()
    ctx.execution_options.preserve_order = True  # rows come back in input order
    ctx.enable_progress_bars = False  # ours counts texts; Ray's would interleave with it
    per_actor = threads or 1
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1) // per_actor))
    source_path = str(Path(path).resolve())
    # The reader reserves no CPU: it parses text while the actors, which hold the cores, score it. (With a
    # reservation, actors filling the machine would leave the read task unscheduled: a deadlock.)
    ds = ray.data.read_datasource(_datasource(source_path, fmt, text_field, id_field, start_after), num_cpus=0)
    ds = ds.map_batches(
        Scorer, batch_size=chunk_size, batch_format="numpy", compute=ActorPoolStrategy(size=workers), num_cpus=per_actor,
        fn_constructor_kwargs=dict(model_dir=str(moderator.package_dir.resolve()), threads=per_actor,
                                   batch_size=moderator.batch_size, max_chars=moderator.max_chars,
                                   max_windows=moderator.max_windows, normalize=moderator.normalize, cache_size=cache_size,
                                   platform=moderator.platform))
    scanner = Scanner(moderator, writer, on_error=on_error, errors_stream=errors_stream, only_flagged=only_flagged,
                      source=source, progress=progress, durable=durable)
    try:
        for batch in _batches(ds, chunk_size):
            chunk, rows = [], []
            for i in range(len(batch["line"])):
                line, bad = int(batch["line"][i]), batch["bad"][i]
                entry = (BadItem(line, str(bad), _unpack(batch["text"][i])) if bad
                         else Item(line, _unpack(batch["id"][i]), _unpack(batch["text"][i])))
                try:
                    item = scanner.accept(entry)
                except ScanError:
                    if chunk:  # on_error=fail: keep the rows before the bad one
                        scanner.write_chunk(chunk, batch["scores"][rows])
                    raise
                if item is not None:
                    chunk.append(item)
                    rows.append(i)
            if chunk:
                scanner.write_chunk(chunk, batch["scores"][rows])
    finally:
        scanner.close()
    return scanner.summary


def _batches(ds, chunk_size: int):
    """Driver-side iteration; a read-task failure (say, a CSV without the text column) surfaces as our ScanError."""
    try:
        yield from ds.iter_batches(batch_size=chunk_size, batch_format="numpy")
    except Exception as e:  # Ray wraps worker exceptions in its own types
        cause = e
        while cause is not None and not isinstance(cause, ScanError):
            cause = getattr(cause, "cause", None) or cause.__cause__
        if isinstance(cause, ScanError):
            raise ScanError(str(cause)) from None
        raise ScanError(f"Ray scan failed: {type(e).__name__}: {str(e)[:2000]}") from None
