"""`moderate scan`: every input format, stdin, gzip, bad lines, exit codes — through typer's runner."""

import csv
import gzip
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import cli
from tests.conftest import ROOT

runner = CliRunner()
ROWS = [{"id": "a1", "text": "have a good one"}, {"id": "a2", "text": "I will hurt you"}, {"id": "a3", "text": "win cash now"}]


def invoke(args, **kw):
    return runner.invoke(cli.app, ["scan", *args, "--no-progress"], **kw)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_jsonl(path, rows, opener=open):
    with opener(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "csv", "csv.gz", "txt", "txt.gz", "parquet"])
def test_every_input_format(fmt, tmp_path, tiny_package):
    src = tmp_path / f"in.{fmt}"
    base = fmt.removesuffix(".gz")
    opener = gzip.open if fmt.endswith(".gz") else open
    if base == "jsonl":
        write_jsonl(src, ROWS, opener)
    elif base == "csv":
        with opener(src, "wt", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, ["id", "text"])
            w.writeheader()
            w.writerows(ROWS)
    elif base == "txt":
        with opener(src, "wt", encoding="utf-8") as f:
            f.write("\n".join(r["text"] for r in ROWS) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), src)
    out = tmp_path / "out.jsonl"
    r = invoke([str(src), "--out", str(out), "--model", str(tiny_package)])
    assert r.exit_code == 0, r.output
    rows = read_jsonl(out)
    expected_ids = ["1", "2", "3"] if base == "txt" else ["a1", "a2", "a3"]
    assert [row["id"] for row in rows] == expected_ids
    for row in rows:
        assert row["decision"] in ("allow", "review", "block") and len(row["scores"]) == 7


def test_stdin_through_a_real_process(tiny_package):
    payload = "".join(json.dumps(r) + "\n" for r in ROWS)
    p = subprocess.run([sys.executable, "-m", "cli", "scan", "-", "--model", str(tiny_package), "--no-progress"],
                       input=payload, capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert [json.loads(line)["id"] for line in p.stdout.splitlines()] == ["a1", "a2", "a3"]


def test_csv_output_and_only_flagged(tmp_path, tiny_package):
    src = tmp_path / "in.jsonl"
    write_jsonl(src, ROWS)
    out = tmp_path / "out.csv"
    assert invoke([str(src), "-o", str(out), "--model", str(tiny_package)]).exit_code == 0
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["a1", "a2", "a3"] and "score_violence" in rows[0]
    flagged_out = tmp_path / "flagged.jsonl"
    assert invoke([str(src), "-o", str(flagged_out), "--model", str(tiny_package), "--only-flagged"]).exit_code == 0
    assert all(r["flagged"] for r in read_jsonl(flagged_out))


def test_spans_are_added_only_with_the_flag_and_match_the_api(tmp_path, eager_tiny_package):
    tiny_package = eager_tiny_package  # every category flagged, so every row has spans to compare
    from moderation.runtime import Moderator

    rows = ROWS + [{"id": "a4", "text": "you 1d10t. Привет! " * 3}]
    src = tmp_path / "in.jsonl"
    write_jsonl(src, rows)
    out = tmp_path / "out.jsonl"
    assert invoke([str(src), "-o", str(out), "--model", str(tiny_package), "--spans"]).exit_code == 0
    mod = Moderator.load(tiny_package)
    expected = mod.moderate([r["text"] for r in rows], spans=True)
    got = read_jsonl(out)
    assert [g["spans"] for g in got] == [[s.to_dict() for s in e.spans] for e in expected]
    assert all(g["spans"] for g in got) and all(g["flagged"] for g in got)
    plain = tmp_path / "plain.jsonl"
    assert invoke([str(src), "-o", str(plain), "--model", str(tiny_package)]).exit_code == 0
    assert all("spans" not in g for g in read_jsonl(plain))
    as_csv = tmp_path / "out.csv"
    assert invoke([str(src), "-o", str(as_csv), "--model", str(tiny_package), "--spans"]).exit_code == 0
    with open(as_csv) as f:
        assert [json.loads(r["spans"]) for r in csv.DictReader(f)] == [g["spans"] for g in got]
    r = invoke([str(src), "--model", str(tiny_package), "--spans", "--engine", "ray"])
    assert r.exit_code == 2 and "local engine" in r.output
    every = tmp_path / "all.jsonl"  # --all-spans: what moderate(spans="all") gives, and implies --spans
    assert invoke([str(src), "-o", str(every), "--model", str(tiny_package), "--all-spans"]).exit_code == 0
    assert [g["spans"] for g in read_jsonl(every)] == [[s.to_dict() for s in e.spans] for e in mod.moderate([r["text"] for r in rows], spans="all")]


def test_malformed_jsonl_fails_naming_the_line(tmp_path, tiny_package):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1, "text": "fine"}\n{"id": 2, "text": "broken\n{"id": 3, "text": 5}\n')
    r = invoke([str(src), "-o", str(tmp_path / "o.jsonl"), "--model", str(tiny_package)])
    assert r.exit_code == 2
    assert f"{src}: line 2: invalid JSON" in r.output
    assert [row["id"] for row in read_jsonl(tmp_path / "o.jsonl")] == ["1"]  # the row before the failure is kept


def _binary_lines() -> bytes:
    import random

    rng = random.Random(0)
    return bytes(rng.randrange(256) for _ in range(3000))


def test_binary_garbage_as_text_is_an_error_naming_the_line(tmp_path, tiny_package):
    src = tmp_path / "in.txt"
    src.write_bytes(b"a normal first line\nnaive caf\xc3\xa9 and one stray byte \xff here\n" + _binary_lines() + b"\nlast line\n")
    out = tmp_path / "o.jsonl"
    r = invoke([str(src), "-o", str(out), "--model", str(tiny_package)])
    assert r.exit_code == 2, r.output
    assert f"{src}: line 3: not text" in r.output
    assert [row["id"] for row in read_jsonl(out)] == ["1", "2"]  # one stray byte in line 2 is still text
    r = invoke([str(src), "-o", str(out), "--model", str(tiny_package), "--on-error", "skip"])
    assert r.exit_code == 3, r.output
    ids = [x["id"] for x in read_jsonl(out)]
    assert ids[:2] == ["1", "2"] and len(ids) <= 4  # the text lines, and at most a stray short fragment of the garbage
    errors = read_jsonl(tmp_path / "o.jsonl.errors.jsonl")
    assert errors and all(e["reason"].startswith("not text") for e in errors) and errors[0]["line"] == 3


def test_nul_bytes_in_a_jsonl_text_are_refused():
    from moderation.scan import not_text_reason

    assert not_text_reason("hello\x00world").startswith("not text: 1 NUL")
    assert not_text_reason("emoji 😀 and accents é, one \ufffd") is None
    assert not_text_reason("\ufffd\ufffd\ufffdab") is not None


def test_skip_writes_bad_lines_to_the_errors_file(tmp_path, tiny_package):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1, "text": "fine"}\n{"id": 2, "text": "broken\n{"id": 3, "text": 5}\n{"id": 4}\n'
                   '{"id": 5, "text": "also fine"}\n')
    out = tmp_path / "o.jsonl"
    r = invoke([str(src), "-o", str(out), "--model", str(tiny_package), "--on-error", "skip"])
    assert r.exit_code == 3, r.output
    assert [row["id"] for row in read_jsonl(out)] == ["1", "5"]
    errors = read_jsonl(tmp_path / "o.jsonl.errors.jsonl")
    assert [(e["line"], e["reason"].split(" (")[0]) for e in errors] == [
        (2, "invalid JSON"), (3, "text field 'text' is int, not a string"), (4, "missing text field 'text'")]


def test_custom_fields_and_oversized_text(tmp_path, tiny_package):
    src = tmp_path / "in.jsonl"
    write_jsonl(src, [{"key": "k1", "body": "hello"}, {"key": "k2", "body": "y" * 500}])
    out = tmp_path / "o.jsonl"
    r = invoke([str(src), "-o", str(out), "--model", str(tiny_package), "--text-field", "body", "--id-field", "key",
                "--max-chars", "100"])
    assert r.exit_code == 2 and "line 2: text has 500 characters, over the limit of 100" in r.output


@pytest.mark.parametrize("case", ["directory", "missing", "bad_header", "truncated_gzip", "unknown_ext"])
def test_unreadable_inputs_get_a_clear_error(case, tmp_path, tiny_package):
    if case == "directory":
        src = tmp_path
        expected = "is a directory"
    elif case == "missing":
        src = tmp_path / "nope.jsonl"
        expected = "no such file"
    elif case == "bad_header":
        src = tmp_path / "in.csv"
        src.write_text("identifier,body\n1,hi\n")
        expected = "line 1: CSV header has no 'text' column"
    elif case == "truncated_gzip":
        src = tmp_path / "in.jsonl.gz"
        write_jsonl(src, ROWS * 200, gzip.open)
        src.write_bytes(src.read_bytes()[:-40])
        expected = "truncated"
    else:
        src = tmp_path / "in.xml"
        src.write_text("<a/>")
        expected = "cannot tell the format"
    r = invoke([str(src), "-o", str(tmp_path / "o.jsonl"), "--model", str(tiny_package)])
    assert r.exit_code == 2, r.output
    assert expected in r.output and str(src).split("/")[-1] in r.output
    assert "Traceback" not in r.output


def test_bad_model_path_is_a_clear_error(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("hi\n")
    r = invoke([str(src), "--model", str(tmp_path / "nomodel")])
    assert r.exit_code == 2 and "model package not found" in r.output
