"""`moderate`: the command-line face of the toolkit. Each command parses its options, calls one function of
the library, and prints; every project error becomes its documented exit code in one place
(`commands.common.App`). The command groups live in `commands/` (train, review, registry); the commands a
user runs most (scan, check, serve, loop) are here.

Heavy imports (torch, transformers) happen inside the commands that need them, so `moderate scan`
starts fast and runs without torch installed.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from commands.common import (
    DataDir,
    ExitCode,
    LSDir,
    LSUrl,
    ModelPath,
    Project,
    RegistryDir,
    Seed,
    StoreDir,
    Strategy,
    fail,
    new_app,
    open_registry,
    print_renderables,
    read_rows,
    review_client,
    say,
)
from commands.registry import registry_app
from commands.review import review_app
from commands.train import data_app, eval_cmd, export_cmd, train_app

app = new_app("Content moderation you own: train, review, improve and run a moderation model on your own CPUs.")
for sub, name in ((data_app, "data"), (train_app, "train"), (review_app, "review"), (registry_app, "registry")):
    app.add_typer(sub, name=name)


@app.callback()
def _quiet_libraries(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the libraries' own log lines and warnings (ONNX Runtime, transformers, torch).")] = False) -> None:
    """Library log noise off by default: ONNX Runtime's quantizer configures the root logger at INFO when
    imported, which buried `moderate loop`'s verdict under a hundred lines. Claiming the root logger first
    at WARNING makes that call a no-op."""
    import logging
    import os
    import warnings

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s [%(levelname)s] %(message)s")
    if not verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        # Deprecation and tracer warnings raised inside the ML libraries are theirs to fix, not the user's.
        warnings.filterwarnings("ignore", module=r"(torch|transformers|onnxruntime|onnx|peft|onnxscript)(\.|$)")



class OnError(str, Enum):
    fail = "fail"
    skip = "skip"


class Engine(str, Enum):
    local = "local"
    ray = "ray"


@app.command()
def scan(
    input: Annotated[str, typer.Argument(help="File to scan (.jsonl, .csv, .txt, .parquet, optionally .gz), or - for stdin.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Where results go (.jsonl or .csv); - for stdout.")] = "-",
    model: ModelPath = None,
    format: Annotated[Optional[str], typer.Option("--format", help="Input format when the name does not say: jsonl, csv, txt, parquet.")] = None,
    text_field: Annotated[str, typer.Option(help="JSONL key / CSV or Parquet column holding the text.")] = "text",
    id_field: Annotated[Optional[str], typer.Option(help="Key / column holding the item id (default: the line number).")] = "id",
    only_flagged: Annotated[bool, typer.Option(help="Write only items flagged in some category.")] = False,
    on_error: Annotated[OnError, typer.Option(help="fail: stop at the first bad item (rows before it are kept). skip: write it to the errors file and go on.")] = OnError.fail,
    errors: Annotated[Optional[Path], typer.Option(help="Errors file for --on-error skip (default: OUT.errors.jsonl, or scan-errors.jsonl).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per ONNX Runtime call.")] = 32,
    threads: Annotated[Optional[int], typer.Option(min=1, help="ONNX Runtime threads (default: all cores).")] = None,
    max_chars: Annotated[int, typer.Option(min=1, help="Texts longer than this are errors, never silently truncated.")] = 1_000_000,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    resume: Annotated[bool, typer.Option(help="Continue a scan that was stopped or killed: keep OUT's complete rows, scan the rest (JSONL output).")] = False,
    fsync: Annotated[bool, typer.Option(help="fsync the output after every chunk, so --resume after a crash or power loss loses nothing (benchmarks/scan_scale.py measures the cost).")] = True,
    cache_size: Annotated[int, typer.Option(min=0, help="Remember the scores of this many recent distinct texts, so repeats are scored once (0: off).")] = 100_000,
    engine: Annotated[Engine, typer.Option(help="local: this process. ray: score on a Ray actor pool (pip install 'moderation-rlhf[ray]').")] = Engine.local,
    workers: Annotated[Optional[int], typer.Option(min=1, help="--engine ray: scoring actors (default: the cluster's CPUs / --threads).")] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="--engine ray: cluster to join (e.g. auto, ray://head:10001); default: start Ray on this machine.")] = None,
    spans: Annotated[bool, typer.Option(help="Add each flagged category's evidence: character spans of the input text (docs/spans.md).")] = False,
    all_spans: Annotated[bool, typer.Option(help="With spans, also the span head's marks in toxic, hate and violence where the text is not flagged (implies --spans; docs/spans.md).")] = False,
    platform: Annotated[Optional[str], typer.Option(help="The platform the texts come from: score with the graph `moderate loop --platform` adapted to its reviews (default: the main graph).")] = None,
) -> None:
    """Score every item of a file and write id, flagged, decision and per-category scores.

    Exit codes: 0 done; 2 bad input or model (message names file and line); 3 done, but --on-error skip
    skipped items; 130 interrupted.
    """
    from moderation.scan import scan_file, summary_table

    run = scan_file(input, out, model=model, fmt=format, text_field=text_field, id_field=id_field, only_flagged=only_flagged,
                    on_error=on_error.value, errors=errors, batch_size=batch_size, threads=threads, max_chars=max_chars,
                    progress=progress, resume=resume, fsync=fsync, cache_size=cache_size, engine=engine.value, workers=workers,
                    ray_address=ray_address, spans="all" if all_spans else spans, platform=platform, log=say)
    table, decisions = summary_table(run)
    print_renderables(table, decisions + (f"; output: {out}" if out != "-" else ""))
    if run.errors_path:
        print_renderables(f"[yellow]{run.summary.skipped} bad item(s) skipped; see {run.errors_path}[/yellow]")
    if run.cache is not None and run.cache.hits:
        say(f"cache: {run.cache.hits} repeated texts reused their scores ({run.cache.misses} scored)")
    if run.summary.skipped:
        raise typer.Exit(ExitCode.ITEM_ERRORS)



@app.command("check")
def check_cmd(
    model: Annotated[Optional[Path], typer.Argument(help="Model package (default: the shipped one).")] = None,
    min_pass: Annotated[float, typer.Option(min=0.0, max=1.0, help="Exit 4 when any capability passes fewer cases than this.")] = 0.0,
    out: Annotated[Optional[Path], typer.Option(help="Write the full report (with every failure) as JSON here.")] = None,
) -> None:
    """Run the behavioural suite (threats, self-harm, identity mentions, negation, counter-speech, figurative
    language, obfuscation, harm inside long texts, spam, misinformation) and print the pass rate per capability."""
    from moderation.behavioural import cases, run_suite
    from moderation.runtime import Moderator

    report = run_suite(Moderator.load(model), cases())
    for cap, r in report["capabilities"].items():
        typer.echo(f"{cap:34s} {r['passed']:3d}/{r['n']:<3d} {r['pass_rate']:6.1%}")
    typer.echo(f"{'all':34s} {report['passed']:3d}/{report['n']:<3d} {report['pass_rate']:6.1%}")
    if out:
        out.write_text(json.dumps(report, indent=2))
    weak = [c for c, r in report["capabilities"].items() if r["pass_rate"] < min_pass]
    if weak:
        fail(f"capabilities below {min_pass:.0%}: {', '.join(weak)}", ExitCode.GATE_FAILED)



# Evaluation and export live with training (commands/train.py); they are top-level commands.
app.command("eval")(eval_cmd)
app.command("export")(export_cmd)


@app.command("serve")
def serve_cmd(
    model: ModelPath = None,
    host: Annotated[str, typer.Option(help="Interface to bind; keep loopback unless a proxy with TLS sits in front.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")] = 8000,
    store: Annotated[Optional[Path], typer.Option(help="Feedback store for Label Studio webhooks (omit to refuse them).")] = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Texts per ONNX run when requests are micro-batched.")] = 64,
    max_wait_ms: Annotated[float, typer.Option(min=0.0, help="How long a request may wait for batch-mates.")] = 5.0,
    max_inputs: Annotated[int, typer.Option(min=1, help="Texts per request.")] = 256,
    max_chars: Annotated[int, typer.Option(min=1, help="Characters per text; longer ones get 413.")] = 100_000,
    threads: Annotated[Optional[int], typer.Option(help="ONNX Runtime threads (default: all cores).")] = None,
    platform: Annotated[Optional[str], typer.Option(help="The platform the texts come from: score with the graph `moderate loop --platform` adapted to its reviews (default: the main graph).")] = None,
) -> None:
    """Serve POST /v1/moderations (OpenAI-compatible) and the Label Studio ML-backend protocol.

    Set MODERATION_API_TOKEN to require `Authorization: Bearer <token>` on everything but /health.
    """
    import os

    from moderation.serve import TOKEN_ENV, ServeConfig, serve

    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(f"warning: binding {host}: the server is reachable from other machines", fg=typer.colors.YELLOW, err=True)
    if not os.environ.get(TOKEN_ENV):
        typer.secho(f"warning: {TOKEN_ENV} is not set, so every route is open to anyone who can reach "
                    f"{host}:{port}; set it to require `Authorization: Bearer <token>`", fg=typer.colors.YELLOW, err=True)
    serve(model, host=host, port=port, store_dir=store, threads=threads, platform=platform,
          config=ServeConfig(max_batch=max_batch, max_wait_ms=max_wait_ms, max_inputs=max_inputs, max_chars=max_chars))



class Method(str, Enum):
    rl = "rl"
    sft_rl = "sft+rl"
    sft = "sft"


@app.command("loop")
def loop_cmd(
    n: Annotated[int, typer.Option(min=1, help="Items to send for review in this iteration.")] = 1000,
    strategy: Annotated[Strategy, typer.Option(help="How review items are chosen.")] = Strategy.uncertainty,
    input: Annotated[Optional[str], typer.Option("--input", help="Candidate items (any `scan` input format); default: the dataset validation split.")] = None,
    simulate: Annotated[bool, typer.Option(help="Simulated reviewers work the queue through Label Studio (candidates: items with per-annotator labels).")] = False,
    wait: Annotated[float, typer.Option(help="Without --simulate: minutes to wait for human reviews before training (Ctrl-C stops waiting).")] = 0.0,
    method: Annotated[Method, typer.Option(help="sft: fine-tune on the corrections, held near the current model on other "
                                                "sources (won the adaptation benchmark); rl: reward model + RL; sft+rl: both.")] = Method.sft,
    rl_steps: Annotated[int, typer.Option(min=1, help="Policy-gradient steps of RL fine-tuning (more: moves further from the current model).")] = 100,
    kl_beta: Annotated[float, typer.Option(min=0.0, help="Weight of the KL leash to the current model (larger: smaller, safer changes).")] = 0.05,
    policy: Annotated[Optional[Path], typer.Option(help="Torch checkpoint to improve (default: production's).")] = None,
    platform: Annotated[Optional[str], typer.Option(help="Adapt for one platform: learn from its reviews only and ship the result as its own "
                                                         "graph beside production's unchanged one; score its texts with `moderate scan "
                                                         "--platform NAME`. With --input, NAME is the platform the file's items come from "
                                                         "(one in four of its reviewed items is kept aside to judge candidates); without, "
                                                         "a dataset source.")] = None,
    project: Project = "Moderation review", store: StoreDir = Path("data/feedback"), registry: RegistryDir = None,
    ls_dir: LSDir = None, url: LSUrl = None, data_dir: DataDir = None, seed: Seed = 0,
) -> None:
    """One iteration: select, push, review, pull, reward model, fine-tune (SFT or RL), export, and promote only if the gate passes."""
    from moderation.training.improve import ImproveConfig
    from moderation.training.loop import LoopConfig, run_from_registry, verdict
    from moderation.training.rl import RLConfig

    cfg = LoopConfig(project=project, n=n, strategy=strategy.value, simulate=simulate, wait_seconds=wait * 60, method=method.value,
                     improve=ImproveConfig(rl=RLConfig(steps=rl_steps, kl_beta=kl_beta)), platform=platform, seed=seed)
    client, creds = review_client(ls_dir, url)
    rows = read_rows(input) if input is not None else None
    report = run_from_registry(cfg, client, creds.url, open_registry(registry), store, data_dir, rows, input, policy, log=say)
    typer.echo(json.dumps({k: report.get(k) for k in ("version", "parent", "promoted", "unchanged", "gate", "export", "reward_model",
                                                      "timings", "seconds")}, default=float))
    if "int8_refused" in (report.get("export") or {}):
        typer.secho(f"INT8 export refused by the parity gate, exported in fp32: {report['export']['int8_refused']}",
                    fg=typer.colors.YELLOW, err=True)
    typer.secho("\n" + verdict(report), fg=typer.colors.GREEN if report.get("promoted") else typer.colors.YELLOW, err=True)
    if not report.get("promoted"):
        raise typer.Exit(ExitCode.GATE_FAILED)


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
