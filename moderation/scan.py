"""Streaming batch scans: read items, score them in chunks, write results as they go (flat memory).

Inputs: JSONL (`--text-field`, `--id-field`), CSV (header row), plain text (one item per line), Parquet,
gzip of any of these (`.gz`), and `-` for standard input (JSONL or text; pick with `--format`).
Outputs: JSONL or CSV with id, flagged, decision and one score per category.

A malformed item (bad JSON, missing or non-string text, over the size limit) either stops the scan with
an error naming the file and line (`on_error="fail"`) or is written with its line number and reason to an
errors file and skipped (`on_error="skip"`). Runtime path: no torch.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, TextIO

from moderation.errors import ModerationError
from moderation.runtime import Moderator
from moderation.spans import span_mode

FORMATS = ("jsonl", "csv", "txt", "parquet")


class ScanError(ModerationError, RuntimeError):
    """The input cannot be scanned; the message names the file and, where it applies, the line."""


# A line of text may carry the odd replacement character (one bad byte) or control character; binary data
# decoded as UTF-8 is full of them. Above this share, or with any NUL byte, the line is not text.
MAX_NON_TEXT_SHARE = 0.1
# Runs on every scanned text: one C-level regex pass, not a Python loop over characters.
_NOT_TEXT = re.compile("[\x00-\x08\x0e-\x1f\x7f\ufffd]")


def not_text_reason(text: str) -> str | None:
    """Why `text` looks like binary data rather than text, or None when it is text."""
    if "\x00" in text:
        return f"not text: {text.count(chr(0))} NUL byte(s) (binary input? pass a text file)"
    if not text:
        return None
    bad = len(_NOT_TEXT.findall(text))
    if bad > MAX_NON_TEXT_SHARE * len(text):
        return (f"not text: {bad} of {len(text)} characters are invalid UTF-8 or control characters "
                f"(more than {MAX_NON_TEXT_SHARE:.0%}; binary input, or a file not in UTF-8?)")
    return None


@dataclass
class Item:
    line: int  # 1-based line (JSONL/text), data row (CSV, after the header) or row (Parquet)
    id: str
    text: str


@dataclass
class BadItem:
    line: int
    reason: str
    raw: str = ""


@dataclass
class ScanSummary:
    total: int = 0
    scored: int = 0
    skipped: int = 0
    flagged: int = 0
    decisions: Counter = field(default_factory=Counter)
    per_category: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def texts_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0


def detect_format(path: str, explicit: str | None) -> str:
    if path != "-" and Path(path).is_dir():
        raise ScanError(f"{path}: is a directory, not a file")
    if explicit:
        if explicit not in FORMATS:
            raise ScanError(f"unknown --format {explicit!r}; choose one of {', '.join(FORMATS)}")
        return explicit
    if path == "-":
        return "jsonl"
    name = path.lower().removesuffix(".gz")
    for suffix, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"), (".csv", "csv"),
                        (".txt", "txt"), (".text", "txt"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return fmt
    raise ScanError(f"{path}: cannot tell the format from the name; pass --format ({', '.join(FORMATS)})")


def _open_input(path: str) -> TextIO:
    """Text stream over a file, a .gz file or stdin; invalid UTF-8 is replaced so one bad byte loses one line at most."""
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="")
    p = Path(path)
    if p.is_dir():
        raise ScanError(f"{path}: is a directory, not a file")
    if not p.exists():
        raise ScanError(f"{path}: no such file")
    raw = open(p, "rb")
    head = raw.read(2)
    raw.seek(0)
    if head == b"\x1f\x8b":
        raw = gzip.GzipFile(fileobj=raw)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def _guard_gzip(path: str, it: Iterator) -> Iterator:
    """A truncated .gz fails mid-stream: turn that into an error naming the file."""
    try:
        yield from it
    except (EOFError, gzip.BadGzipFile, OSError) as e:
        raise ScanError(f"{path}: unreadable or truncated compressed input ({e})") from None


def read_jsonl(stream: TextIO, text_field: str, id_field: str | None) -> Iterator[Item | BadItem]:
    for n, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield BadItem(n, f"invalid JSON ({e.msg} at column {e.colno})", line.rstrip("\r\n"))
            continue
        if not isinstance(obj, dict):
            yield BadItem(n, f"expected a JSON object, got {type(obj).__name__}", line.rstrip("\r\n"))
            continue
        text = obj.get(text_field)
        if text is None:
            yield BadItem(n, f"missing text field {text_field!r}", line.rstrip("\r\n"))
            continue
        if not isinstance(text, str):
            yield BadItem(n, f"text field {text_field!r} is {type(text).__name__}, not a string", line.rstrip("\r\n"))
            continue
        ident = obj.get(id_field) if id_field else None
        yield Item(n, str(ident) if ident is not None else str(n), text)


def read_csv(stream: TextIO, text_field: str, id_field: str | None, source: str) -> Iterator[Item | BadItem]:
    csv.field_size_limit(2**31 - 1)
    reader = csv.DictReader(stream)
    header = reader.fieldnames or []
    if text_field not in header:
        raise ScanError(f"{source}: line 1: CSV header has no {text_field!r} column (columns: {header}); pass --text-field")
    if id_field and id_field not in header:
        raise ScanError(f"{source}: line 1: CSV header has no {id_field!r} column (columns: {header}); pass --id-field")
    for n, row in enumerate(reader, 1):
        text = row.get(text_field)
        if text is None or None in row:
            yield BadItem(n, "row has a different number of fields than the header")
            continue
        yield Item(n, str(row[id_field]) if id_field else str(n), text)


def read_txt(stream: TextIO) -> Iterator[Item]:
    for n, line in enumerate(stream, 1):
        text = line.rstrip("\r\n")
        if text.strip():
            yield Item(n, str(n), text)


def read_parquet(path: str, text_field: str, id_field: str | None, batch_rows: int = 4096) -> Iterator[Item | BadItem]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ScanError("Parquet input needs pyarrow: pip install 'moderation-rlhf[parquet]'") from None
    if path == "-":
        raise ScanError("Parquet cannot be read from stdin; pass a file")
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise ScanError(f"{path}: not a readable Parquet file ({e})") from None
    names = pf.schema_arrow.names
    if text_field not in names:
        raise ScanError(f"{path}: no column {text_field!r} (columns: {names}); pass --text-field")
    cols = [text_field] + ([id_field] if id_field and id_field != text_field else [])
    n = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
        data = batch.to_pydict()
        for i, text in enumerate(data[text_field]):
            n += 1
            if not isinstance(text, str):
                yield BadItem(n, f"text column {text_field!r} is {type(text).__name__}, not a string")
                continue
            yield Item(n, str(data[id_field][i]) if id_field else str(n), text)


def read_items(path: str, fmt: str, text_field: str = "text", id_field: str | None = "id") -> Iterator[Item | BadItem]:
    if fmt == "parquet":
        yield from read_parquet(path, text_field, id_field)
        return
    stream = _open_input(path)
    try:
        if fmt == "jsonl":
            yield from _guard_gzip(path, read_jsonl(stream, text_field, id_field))
        elif fmt == "csv":
            yield from _guard_gzip(path, read_csv(stream, text_field, id_field, path))
        else:
            yield from _guard_gzip(path, read_txt(stream))
    finally:
        if stream is not None and path != "-":
            stream.close()


class ResultWriter:
    """JSONL or CSV rows: id, flagged, decision, then one score column per category."""

    def __init__(self, stream: TextIO, fmt: str, categories: list[str], spans: bool = False):
        if fmt not in ("jsonl", "csv"):
            raise ScanError(f"output format must be jsonl or csv, got {fmt!r}")
        self.stream, self.fmt, self.categories, self.spans = stream, fmt, categories, spans
        self._csv = None
        if fmt == "csv":
            self._csv = csv.writer(stream)
            self._csv.writerow(["id", "flagged", "decision", *[f"score_{c}" for c in categories], "categories",
                                *(["spans"] if spans else [])])

    def write(self, item: Item, result) -> None:
        spans = [s.to_dict() for s in result.spans or []] if self.spans else None
        if self._csv is not None:
            flagged_cats = ";".join(c for c, v in result.categories.items() if v)
            self._csv.writerow([item.id, str(result.flagged).lower(), result.decision,
                                *[f"{result.scores[c]:.6f}" for c in self.categories], flagged_cats,
                                *([json.dumps(spans)] if self.spans else [])])
        else:
            row = {"id": item.id, "line": item.line, "flagged": result.flagged, "decision": result.decision,
                   "categories": [c for c, v in result.categories.items() if v], "scores": result.scores}
            if self.spans:
                row["spans"] = spans
            self.stream.write(json.dumps(row, ensure_ascii=False) + "\n")


def resume_point(path: Path) -> int:
    """For `--resume`: the input line of the last complete row of a JSONL output (0 if none).

    A process killed mid-write can leave half a row at the end; it is cut off here (the file is truncated
    after the last newline), so the resumed scan writes that item again, once."""
    if not path.is_file():
        return 0
    with open(path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    for line in reversed(data[:end].splitlines()):
        if line.strip():
            try:
                return int(json.loads(line)["line"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise ScanError(f"{path}: the last row is not one of our JSONL results; cannot resume from it") from None
    return 0


class ScoreCache:
    """Scores of recently seen texts, keyed by a 16-byte BLAKE2 digest of the text: repeated items (spam
    waves, copy-paste campaigns, re-scans) are scored once. Bounded (least recently used out first), so a
    scan's memory stays flat: ~150 bytes per entry, ~15 MB at the default 100,000."""

    def __init__(self, max_entries: int = 100_000):
        from collections import OrderedDict

        if max_entries < 0:
            raise ValueError(f"cache size must be >= 0, got {max_entries}")
        self.max_entries = max_entries
        self._rows: "OrderedDict[bytes, bytes]" = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def key(text: str) -> bytes:
        import hashlib

        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def score(self, moderator: Moderator, texts: list[str]):
        """Same result as moderator.score(texts); only texts not in the cache (deduplicated) reach the model."""
        import numpy as np

        if self.max_entries == 0:
            self.misses += len(texts)
            return moderator.score(texts)
        keys = [self.key(t) for t in texts]
        out = np.empty((len(texts), len(moderator.categories)), dtype=np.float32)
        todo: dict[bytes, list[int]] = {}
        for i, k in enumerate(keys):
            row = self._rows.get(k)
            if row is None:
                todo.setdefault(k, []).append(i)
            else:
                self._rows.move_to_end(k)
                out[i] = np.frombuffer(row, dtype=np.float32)
                self.hits += 1
        if todo:
            fresh = moderator.score([texts[rows[0]] for rows in todo.values()])
            for (k, rows), scores in zip(todo.items(), fresh):
                out[rows] = scores
                self._rows[k] = scores.astype(np.float32).tobytes()
            self.misses += len(todo)
            self.hits += sum(len(rows) - 1 for rows in todo.values())  # repeats within this chunk
            while len(self._rows) > self.max_entries:
                self._rows.popitem(last=False)
        return out


class Scanner:
    """The bookkeeping every scan engine shares: bad items to the errors file (or a ScanError), results
    written chunk by chunk in input order, counts, progress bar, fsync per chunk when durable."""

    def __init__(self, moderator: Moderator, writer: ResultWriter, *, on_error: str = "fail",
                 errors_stream: TextIO | None = None, only_flagged: bool = False, source: str = "input",
                 progress: bool = True, durable: bool = False):
        from tqdm import tqdm

        if on_error not in ("fail", "skip"):
            raise ScanError(f"on_error must be fail or skip, got {on_error!r}")
        self.moderator, self.writer, self.on_error, self.errors_stream = moderator, writer, on_error, errors_stream
        self.only_flagged, self.source, self.durable = only_flagged, source, durable
        self.summary = ScanSummary()
        self.started = time.perf_counter()
        self.bar = tqdm(unit=" texts", desc="scanning", disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def accept(self, entry: Item | BadItem) -> Item | None:
        """The item if it can be scored; a bad one is rejected (raises with on_error=fail) and None returned."""
        self.summary.total += 1
        if isinstance(entry, BadItem):
            self.reject(entry)
            return None
        if len(entry.text) > self.moderator.max_chars:
            self.reject(BadItem(entry.line, f"text has {len(entry.text)} characters, over the limit of "
                                            f"{self.moderator.max_chars} (raise it with --max-chars)", entry.text[:200]))
            return None
        reason = not_text_reason(entry.text)
        if reason is not None:
            self.reject(BadItem(entry.line, reason, entry.text[:200].replace("\x00", "")))
            return None
        return entry

    def reject(self, bad: BadItem) -> None:
        self.summary.skipped += 1
        if self.on_error == "fail":
            raise ScanError(f"{self.source}: line {bad.line}: {bad.reason} (use --on-error skip to skip bad items)")
        if self.errors_stream is not None:
            # ASCII-escaped: a raw excerpt may hold U+0085 or U+2028, which line-splitting readers take for a newline
            self.errors_stream.write(json.dumps({"line": bad.line, "reason": bad.reason, "raw": bad.raw[:2000]}) + "\n")

    def write_chunk(self, chunk: list[Item], scores, spans=None) -> None:
        summary = self.summary
        results = self.moderator.results_from_scores(scores)
        for result, found in zip(results, spans or ()):
            result.spans = found
        for it, result in zip(chunk, results):
            summary.scored += 1
            summary.decisions[result.decision] += 1
            if result.flagged:
                summary.flagged += 1
                summary.per_category.update(c for c, v in result.categories.items() if v)
            if result.flagged or not self.only_flagged:
                self.writer.write(it, result)
        self.writer.stream.flush()
        if self.durable:
            os.fsync(self.writer.stream.fileno())
            if self.errors_stream is not None:
                self.errors_stream.flush()
                os.fsync(self.errors_stream.fileno())
        self.bar.update(len(chunk))

    def close(self) -> ScanSummary:
        self.bar.close()
        self.summary.seconds = time.perf_counter() - self.started
        return self.summary


def scan(moderator: Moderator, items: Iterator[Item | BadItem], writer: ResultWriter, *, on_error: str = "fail",
         errors_stream: TextIO | None = None, only_flagged: bool = False, chunk_size: int = 256, source: str = "input",
         progress: bool = True, start_after: int = 0, durable: bool = False, cache: ScoreCache | None = None,
         spans: bool | str = False) -> ScanSummary:
    """Score items in chunks and write each chunk before reading the next (memory stays flat).

    start_after: skip input lines up to this one (resuming). durable: fsync the output after every
    chunk, so a crash loses at most the chunk in flight (what `--resume` relies on). cache: repeated
    texts are scored once (None: no cache). spans: each result also gets its spans, True or "flagged" for the
    flagged categories, "all" with the span head's unflagged marks too (the cache is not used)."""
    mode = span_mode(spans)
    scanner = Scanner(moderator, writer, on_error=on_error, errors_stream=errors_stream, only_flagged=only_flagged,
                      source=source, progress=progress, durable=durable)
    chunk: list[Item] = []

    def flush() -> None:
        if chunk:
            texts = [it.text for it in chunk]
            if mode:
                scanner.write_chunk(chunk, *moderator.score_with_spans(texts, mode))
            else:
                scanner.write_chunk(chunk, cache.score(moderator, texts) if cache is not None else moderator.score(texts))
            chunk.clear()

    try:
        for entry in items:
            if entry.line <= start_after:
                continue
            try:
                item = scanner.accept(entry)
            except ScanError:
                flush()  # on_error=fail: the rows read before the bad one are still scored and written
                raise
            if item is not None:
                chunk.append(item)
                if len(chunk) >= chunk_size:
                    flush()
        flush()
    finally:
        scanner.close()
    return scanner.summary


@dataclass
class ScanRun:
    """What `scan_file` did: the counts, the model that scored, where bad items went, the repeat cache."""

    summary: ScanSummary
    moderator: Moderator
    errors_path: Path | None
    cache: ScoreCache | None
    start_after: int


def scan_file(input: str, out: str = "-", *, model=None, fmt: str | None = None, text_field: str = "text",
              id_field: str | None = "id", only_flagged: bool = False, on_error: str = "fail", errors: Path | None = None,
              batch_size: int = 32, threads: int | None = None, max_chars: int = 1_000_000, progress: bool = True,
              resume: bool = False, fsync: bool = True, cache_size: int = 100_000, engine: str = "local",
              workers: int | None = None, ray_address: str | None = None, spans: bool | str = False, platform: str | None = None,
              log=lambda message: None) -> ScanRun:
    """`moderate scan`: open the input and outputs, score with the chosen engine, close everything.

    Rows scored before an error or Ctrl-C stay in the output (a KeyboardInterrupt propagates after the
    files are closed); `resume` appends after the last complete row of a JSONL output."""
    fmt = detect_format(input, fmt)
    out_fmt = "csv" if out.lower().endswith(".csv") else "jsonl"
    if resume and (out == "-" or out_fmt != "jsonl"):
        raise ScanError("--resume needs a JSONL output file (--out results.jsonl)")
    try:
        span_mode(spans)
    except ValueError as e:
        raise ScanError(str(e)) from None
    if spans and engine == "ray":
        raise ScanError("--spans works with the local engine only (--engine local)")
    start_after = resume_point(Path(out)) if resume else 0
    try:
        moderator = Moderator.load(model, threads=threads, batch_size=batch_size, max_chars=max_chars, platform=platform)
    except ValueError as e:
        raise ScanError(str(e)) from None
    if spans and not moderator.has_token_probs:
        raise ScanError(f"--spans: model {moderator.version} has no per-token output; export it again (0.4.1 or later)")
    if start_after:
        log(f"resuming after input line {start_after}")
    mode = "a" if resume else "w"
    out_stream = sys.stdout if out == "-" else open(out, mode, encoding="utf-8", newline="")
    err_path = errors or (Path(f"{out}.errors.jsonl") if out != "-" else Path("scan-errors.jsonl"))
    err_stream = open(err_path, mode, encoding="utf-8") if on_error == "skip" else None
    writer = ResultWriter(out_stream, out_fmt, moderator.categories, spans=spans)
    options = dict(on_error=on_error, errors_stream=err_stream, only_flagged=only_flagged, source=input, progress=progress,
                   start_after=start_after, durable=fsync and out != "-")
    cache = ScoreCache(cache_size) if cache_size and engine == "local" and not spans else None
    try:
        if engine == "ray":
            from moderation.scan_ray import scan_with_ray

            summary = scan_with_ray(moderator, input, fmt, writer, text_field=text_field, id_field=id_field or None,
                                    workers=workers, threads=threads, address=ray_address, cache_size=cache_size, **options)
        else:
            items = read_items(input, fmt, text_field=text_field, id_field=id_field or None)
            summary = scan(moderator, items, writer, cache=cache, spans=spans, **options)
    finally:
        if out_stream is not sys.stdout:
            out_stream.close()
        if err_stream is not None:
            err_stream.close()
    return ScanRun(summary, moderator, err_path if summary.skipped else None, cache, start_after)


def summary_table(run: ScanRun):
    """The table a scan ends with: flagged per category, and the decisions line."""
    from rich.table import Table

    s = run.summary
    table = Table(title=f"{s.scored} texts scored in {s.seconds:.1f}s ({s.texts_per_second:.0f} texts/s), model {run.moderator.version}")
    for col in ("category", "flagged", "share"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for c in run.moderator.categories:
        n = s.per_category.get(c, 0)
        table.add_row(c, str(n), f"{n / s.scored:.1%}" if s.scored else "—")
    return table, (f"decisions: allow {s.decisions.get('allow', 0)}, review {s.decisions.get('review', 0)}, "
                   f"block {s.decisions.get('block', 0)}; flagged {s.flagged}")
