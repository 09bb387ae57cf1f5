"""Every code example in README.md and docs/*.md runs, so a wrong example fails CI.

Fenced blocks by language:
  python   doctests (`>>>` lines): executed in the repository root, shown output compared (ELLIPSIS,
           whitespace-normalised). A block that talks to `moderate serve` gets a real server with the
           shipped model: the test points the example's http://127.0.0.1:8000 at it.
  console  `$ command` lines run in bash in a scratch folder that sees `examples/`; the lines after a
           command are its expected output (ELLIPSIS, whitespace-normalised).
  bash     commands for a person to run, some taking minutes to hours (train, export, loop, serve): every
           `moderate …` line is parsed against the real CLI (commands, options and their values must
           exist and validate), every `python SCRIPT …` line must name a script whose --help lists each
           option used. What those commands do is tested elsewhere with tiny settings.
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

try:  # typer >= 0.20 vendors its own copy of click; its exceptions are not click's
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_exceptions

import cli
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
SERVER_URL = "http://127.0.0.1:8000"


def blocks(lang: str):
    out = []
    for path in DOCS:
        text = path.read_text()
        for m in FENCE.finditer(text):
            if m.group(1) == lang:
                line = text[: m.start()].count("\n") + 1
                out.append(pytest.param(path, line, m.group(2), id=f"{path.name}:{line}"))
    return out


def test_the_docs_have_examples_of_each_kind():
    assert len(blocks("python")) >= 2 and len(blocks("console")) >= 1 and len(blocks("bash")) >= 5


# ---------------------------------------------------------------- python (doctest)


@pytest.fixture(scope="module")
def shipped_server(tmp_path_factory):
    """`moderate serve` with the shipped model, for examples that use the OpenAI client."""
    from labeling.server import free_port
    from tests.test_serve import TOKEN, _start

    port = free_port()
    proc = _start(ROOT / "models" / "default", tmp_path_factory.mktemp("docs-store"), port)
    os.environ["MODERATION_API_TOKEN"] = TOKEN
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.communicate(timeout=10)
    os.environ.pop("MODERATION_API_TOKEN", None)


@pytest.mark.parametrize("path,line,code", blocks("python"))
def test_python_examples(path, line, code, request, monkeypatch):
    assert ">>>" in code, f"{path.name}:{line}: python examples are written as doctests (>>> with the output shown)"
    if SERVER_URL in code:
        code = code.replace(SERVER_URL, request.getfixturevalue("shipped_server"))
    monkeypatch.chdir(ROOT)
    failures, report = _run_doctest(code, f"{path.name}:{line}")
    assert failures == 0, report


def _run_doctest(code: str, name: str) -> tuple[int, str]:
    test = doctest.DocTestParser().get_doctest(code, {"__name__": "__docs__"}, name, name, 0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    runner.run(test, out=report.append)
    return runner.failures, "".join(report)


def test_a_wrong_python_example_fails():
    assert _run_doctest(">>> 1 + 1\n3\n", "wrong")[0] == 1
    assert _run_doctest(">>> {'toxic': 0.812}\n{'toxic': 0.8...}\n", "ellipsis")[0] == 0


# ---------------------------------------------------------------- console


def _console_steps(code: str) -> list[tuple[str, str]]:
    steps: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return [(cmd, "\n".join(out)) for cmd, out in steps]


@pytest.mark.parametrize("path,line,code", blocks("console"))
def test_console_examples(path, line, code, tmp_path):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "100"}
    checker = doctest.OutputChecker()
    for cmd, expected in _console_steps(code):
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        got = proc.stdout
        assert proc.returncode == 0, f"{path.name}:{line}: `{cmd}` exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        if expected.strip():
            assert checker.check_output(expected.strip() + "\n", got, FLAGS), (
                f"{path.name}:{line}: `{cmd}`\nexpected:\n{expected}\ngot:\n{got}")


# ---------------------------------------------------------------- bash (parsed against the CLI)

ROOT_COMMAND = typer.main.get_command(cli.app)


def _shell_commands(code: str) -> list[str]:
    """Logical lines without comments or environment assignments; `a && b` gives two commands."""
    out = []
    for raw in code.replace("\\\n", " ").splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        words = shlex.split(raw, comments=True)
        cmd: list[str] = []
        for w in words + ["&&"]:
            if w in ("&&", "||", ";", "|"):
                if cmd:
                    out.append(cmd)
                cmd = []
            elif not cmd and re.match(r"^[A-Z_]+=", w):
                continue  # VAR=value prefix
            else:
                cmd.append(w)
    return out


def _parse_moderate(args: list[str]) -> None:
    """Resolve subcommands and parse options exactly as the real CLI would, without running anything."""
    command, ctx_args, name = ROOT_COMMAND, list(args), "moderate"
    parent = None
    while hasattr(command, "commands"):  # a group: resolve the subcommand
        ctx = command.make_context(name, ctx_args, parent=parent, resilient_parsing=False)
        remaining = [*(getattr(ctx, "_protected_args", None) or []), *ctx.args]  # click keeps the subcommand apart
        if not remaining:
            return
        sub, rest = remaining[0], remaining[1:]
        name, command, ctx_args, parent = sub, command.get_command(ctx, sub), rest, ctx
        assert command is not None, f"no such command: {sub}"
    command.make_context(name, ctx_args, parent=parent)


@pytest.mark.parametrize("path,line,code", blocks("bash"))
def test_shell_examples_match_the_cli(path, line, code):
    checked = 0
    for words in _shell_commands(code):
        prog = words[0].removeprefix(".venv/bin/")
        if prog == "moderate":
            try:
                _parse_moderate(words[1:])
            except click_exceptions.Exit:
                pass
            except click_exceptions.ClickException as e:
                pytest.fail(f"{path.name}:{line}: `{' '.join(words)}`: {e.format_message()}")
            checked += 1
        elif prog in ("python", "python3") and words[1:] and words[1].endswith(".py"):
            script = ROOT / words[1]
            assert script.is_file(), f"{path.name}:{line}: no such script {words[1]}"
            help_text = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True,
                                       timeout=120).stdout
            for w in words[2:]:
                if w.startswith("--"):
                    assert w.split("=")[0] in help_text, f"{path.name}:{line}: {words[1]} has no option {w}"
            checked += 1
    if not checked:
        pytest.skip("no moderate or python command in this block")


def test_the_shell_check_refuses_a_wrong_example():
    """The parse check must fail on options that do not exist and on bad values (a gate refuses)."""
    with pytest.raises(click_exceptions.ClickException):
        _parse_moderate(["scan", "x.jsonl", "--no-such-option"])
    with pytest.raises(click_exceptions.ClickException):
        _parse_moderate(["review", "push", "--split", "test"])
    with pytest.raises(AssertionError):
        _parse_moderate(["reveiw", "push"])
    _parse_moderate(["review", "push", "--n", "30"])
