"""`moderate`: the command-line face of the toolkit. Each command parses its options, calls one function of
the library, and prints; every project error becomes its documented exit code in one place (`App`).

Heavy imports (torch, transformers) happen inside the commands that need them, so `moderate scan`
starts fast and runs without torch installed.
"""

from __future__ import annotations

import functools
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from moderation.errors import ModerationError


class ExitCode:
    """Documented exit codes (docs/scanning.md, 'Exit codes')."""

    OK = 0
    BAD_INPUT = 2  # unreadable/malformed input, bad option, invalid taxonomy or model package, server unreachable
    ITEM_ERRORS = 3  # finished, but some items (scan lines, annotations) were skipped and reported
    GATE_FAILED = 4  # export parity gate or promotion gate refused the model
    INTERRUPTED = 130


def fail(message: str, code: int = ExitCode.BAD_INPUT) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


class App(typer.Typer):
    """A Typer whose commands turn the project's errors into a one-line message and their exit code."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)

        def decorate(fn):
            @functools.wraps(fn)
            def run(*a, **k):
                try:
                    return fn(*a, **k)
                except ModerationError as e:
                    fail(str(e), e.exit_code)
                except KeyboardInterrupt:
                    fail("interrupted: what was done so far is kept", ExitCode.INTERRUPTED)

            register(run)
            return fn

        return decorate


def _app(help: str) -> App:
    return App(help=help, no_args_is_help=True, pretty_exceptions_show_locals=False)


app = _app("Content moderation you own: train, review, improve and run a moderation model on your own CPUs.")
data_app = _app("Inspect the training datasets.")
train_app = _app("Train models (step 1: supervised policy; 3: reward model; 4: RL).")
review_app = _app("Step 2: human review in Label Studio (server, queues, feedback, simulated reviewers).")
registry_app = _app("Model versions, their metrics, promotion through the gate, rollback.")
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


def say(message: str) -> None:
    typer.echo(message, err=True)


DataDir = Annotated[Optional[Path], typer.Option(help="Folder holding the datasets (default: ../shared/datasets or $MODERATION_DATA_DIR).")]
TaxonomyPath = Annotated[Optional[Path], typer.Option(help="Your own taxonomy TOML (default: the shipped one).")]
Seed = Annotated[int, typer.Option(help="Random seed: splits stay fixed; sampling and initialisation follow it.")]
ModelPath = Annotated[Optional[Path], typer.Option("--model", help="Model package folder (default: the shipped model, or $MODERATION_MODEL).")]


def _taxonomy(path: Optional[Path]):
    from moderation.taxonomy import load_taxonomy

    return load_taxonomy(path)


def _examples(data_dir: Optional[Path], taxonomy, split: Optional[str] = None):
    """The datasets with their fixed splits: `--seed` never moves the test split."""
    from moderation.training.data import load_examples

    examples = load_examples(data_dir, taxonomy=taxonomy, seed=0)
    return examples if split is None else [e for e in examples if e.split == split]


def _read_rows(input: str, text_field: str = "text", id_field: Optional[str] = "id"):
    from moderation.scan import detect_format, read_items

    return [r for r in read_items(input, detect_format(input, None), text_field, id_field) if hasattr(r, "text")]


def _print(*renderables) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    for r in renderables:
        console.print(r)


# ---------------------------------------------------------------- data and training


@data_app.command("stats")
def data_stats(data_dir: DataDir = None, taxonomy: TaxonomyPath = None) -> None:
    """Examples per source and split, and per category positives/labelled (soft label >= 0.5 counts as positive)."""
    from rich.console import Console

    from moderation.training.data import stats_tables

    tax = _taxonomy(taxonomy)
    for table in stats_tables(_examples(data_dir, tax), tax.names):
        Console().print(table)


class Finetune(str, Enum):
    full = "full"
    lora = "lora"


class BF16(str, Enum):
    auto = "auto"
    on = "on"
    off = "off"


@train_app.command("sft")
def train_sft_cmd(
    out: Annotated[Path, typer.Option(help="Checkpoint folder (resumes from it if it holds a saved state).")] = Path("runs/sft"),
    finetune: Annotated[Finetune, typer.Option(help="Full fine-tune, or LoRA adapters on the encoder.")] = Finetune.full,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the (per-source capped) training set; the best validation epoch is kept.")] = 3,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per optimisation step.")] = 32,
    lr: Annotated[Optional[float], typer.Option(help="Encoder learning rate (default 5e-5 full, 5e-4 LoRA).")] = None,
    max_per_source: Annotated[int, typer.Option(help="Examples per source per epoch (0 = all).")] = 8000,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps (smoke runs).")] = None,
    bf16: Annotated[BF16, typer.Option(help="bf16 autocast: auto (when the CPU has native bf16), on, off.")] = BF16.auto,
    resume: Annotated[bool, typer.Option(help="Resume from OUT/state if present.")] = True,
    exclude_source: Annotated[Optional[list[str]], typer.Option(help="Leave this source out of training and validation (repeat for several): for out-of-domain measurement.")] = None,
    context_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of short training texts also trained inside benign context (harm anywhere in a text).")] = 0.2,
    templates: Annotated[int, typer.Option(min=0, help="Hand-written template texts per family (moderation/training/templates.py); 0 = none.")] = 300,
    data_dir: DataDir = None, taxonomy: TaxonomyPath = None, seed: Seed = 0,
) -> None:
    """Step 1: supervised fine-tuning of the policy on the shared datasets (masked soft-label BCE)."""
    from moderation.training.sft import SFTConfig, train_from_datasets
    from moderation.training.training_set import TrainingSetConfig

    tcfg = TrainingSetConfig(exclude_sources=tuple(exclude_source or ()), context_fraction=context_fraction,
                             templates_per_family=templates, seed=seed)
    cfg = SFTConfig(epochs=epochs, batch_size=batch_size, lr=lr or (5e-5 if finetune == Finetune.full else 5e-4),
                    max_per_source=max_per_source or None, max_steps=max_steps, bf16=bf16.value, seed=seed)
    tax = _taxonomy(taxonomy)
    summary = train_from_datasets(out, _examples(data_dir, tax), tax.names, tcfg, cfg, finetune=finetune.value, resume=resume)
    if summary["interrupted"]:
        raise typer.Exit(ExitCode.INTERRUPTED)
    typer.echo(json.dumps({k: summary[k] for k in ("best_epoch", "best_val_macro_auprc", "train_seconds", "stopped_early")}))


@train_app.command("reward")
def train_reward_cmd(
    store: Annotated[Path, typer.Option(help="Feedback store (from `review pull`).")] = Path("data/feedback"),
    policy: Annotated[Path, typer.Option(help="Supervised policy checkpoint whose encoder embeds the texts.")] = Path("runs/sft-default"),
    out: Annotated[Path, typer.Option(help="Folder for the reward model and its report.")] = Path("runs/reward"),
    holdout: Annotated[float, typer.Option(min=0.05, max=0.5, help="Share of reviewed items held out for pairwise accuracy.")] = 0.2,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the preference pairs.")] = 60,
    taxonomy: TaxonomyPath = None, seed: Seed = 0,
) -> None:
    """Step 3: Bradley-Terry reward model on the store's preference pairs; held-out accuracy vs two baselines."""
    from moderation.training.improve import ImproveConfig, train_reward_from_store

    cfg = ImproveConfig(holdout=holdout, reward_epochs=epochs, seed=seed)
    typer.echo(json.dumps(train_reward_from_store(store, policy, out, _taxonomy(taxonomy), cfg, log=say)))


@train_app.command("rl")
def train_rl_cmd(
    policy: Annotated[Path, typer.Option(help="Supervised policy checkpoint (the reference for the KL).")] = Path("runs/sft-default"),
    reward: Annotated[Path, typer.Option(help="Reward model folder (from `train reward`, trained on this policy's encoder).")] = Path("runs/reward"),
    store: Annotated[Path, typer.Option(help="Feedback store: its held-out reviewed items pick the best step.")] = Path("data/feedback"),
    out: Annotated[Path, typer.Option(help="Checkpoint folder for the RL policy (LoRA merged).")] = Path("runs/rl"),
    pool: Annotated[Optional[str], typer.Option(help="Unlabelled texts to train on (any `scan` input format); default: the dataset train split, labels unused.")] = None,
    pool_size: Annotated[int, typer.Option(min=16, help="Unlabelled texts sampled into the pool (besides the reviewed ones).")] = 1000,
    holdout: Annotated[float, typer.Option(min=0.05, max=0.5, help="Share of reviewed items held out (same split as `train reward`).")] = 0.2,
    steps: Annotated[int, typer.Option(min=1, help="Policy-gradient steps (the best held-out step is kept).")] = 100,
    group_size: Annotated[int, typer.Option(min=2, help="Label sets sampled per text (G).")] = 8,
    kl_beta: Annotated[float, typer.Option(min=0.0, help="Weight of the exact KL to the reference policy.")] = 0.05,
    lr: Annotated[float, typer.Option(help="LoRA learning rate.")] = 1e-4,
    data_dir: DataDir = None, taxonomy: TaxonomyPath = None, seed: Seed = 0,
) -> None:
    """Step 4: policy-gradient fine-tuning (LoRA) against the reward model, with a KL leash and a reward-hacking guard."""
    from moderation.training.improve import ImproveConfig, rl_from_store
    from moderation.training.rl import RLConfig

    tax = _taxonomy(taxonomy)
    texts = [e.text for e in _examples(data_dir, tax, "train")] if pool is None else [r.text for r in _read_rows(pool)]
    cfg = ImproveConfig(holdout=holdout, seed=seed, rl=RLConfig(steps=steps, group_size=group_size, kl_beta=kl_beta, lr=lr))
    hist = rl_from_store(store, policy, reward, out, texts, pool_size, tax, cfg, log=say)
    typer.echo(json.dumps({"best_step": hist.best_step, "stopped_for_reward_hacking": hist.stopped_for_reward_hacking,
                           "final": hist.rows[-1], "out": str(out)}))


# ---------------------------------------------------------------- scan, eval, check, export


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
) -> None:
    """Score every item of a file and write id, flagged, decision and per-category scores.

    Exit codes: 0 done; 2 bad input or model (message names file and line); 3 done, but --on-error skip
    skipped items; 130 interrupted.
    """
    from moderation.scan import scan_file, summary_table

    run = scan_file(input, out, model=model, fmt=format, text_field=text_field, id_field=id_field, only_flagged=only_flagged,
                    on_error=on_error.value, errors=errors, batch_size=batch_size, threads=threads, max_chars=max_chars,
                    progress=progress, resume=resume, fsync=fsync, cache_size=cache_size, engine=engine.value, workers=workers,
                    ray_address=ray_address, log=say)
    table, decisions = summary_table(run)
    _print(table, decisions + (f"; output: {out}" if out != "-" else ""))
    if run.errors_path:
        _print(f"[yellow]{run.summary.skipped} bad item(s) skipped; see {run.errors_path}[/yellow]")
    if run.cache is not None and run.cache.hits:
        say(f"cache: {run.cache.hits} repeated texts reused their scores ({run.cache.misses} scored)")
    if run.summary.skipped:
        raise typer.Exit(ExitCode.ITEM_ERRORS)


class EvalSplit(str, Enum):
    test = "test"
    validation = "validation"


@app.command("eval")
def eval_cmd(
    model: Annotated[Path, typer.Argument(help="A policy checkpoint (from `train sft`) or a model package (from `export`).")],
    out: Annotated[Path, typer.Option(help="Report folder: report.json, report.md, pr_curves.png.")] = Path("runs/eval"),
    split: Annotated[EvalSplit, typer.Option(help="Split to measure on: test or validation.")] = EvalSplit.test,
    data_dir: DataDir = None, taxonomy: TaxonomyPath = None, seed: Seed = 0,
) -> None:
    """Per-category AUPRC, ROC-AUC, F1 at tuned thresholds and calibration error, overall and per source.

    Thresholds are tuned on the validation split with the same model, then applied to SPLIT.
    """
    from moderation.training.evaluate import evaluate_model, scorer_for

    score, own = scorer_for(model, seed)
    tax = _taxonomy(taxonomy) if taxonomy or own is None else own
    examples = _examples(data_dir, tax)
    validation, target = [e for e in examples if e.split == "validation"], [e for e in examples if e.split == split.value]
    typer.echo(evaluate_model(score, str(model), validation, target, split.value, tax, out, log=say))


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


class Quantization(str, Enum):
    int8 = "int8"
    int8_weights = "int8-weights"
    int8_dynamic = "int8-dynamic"
    none = "none"


@app.command("export")
def export_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Policy checkpoint folder (from `train sft` or `train rl`).")],
    out: Annotated[Path, typer.Option(help="Model package folder to write.")] = Path("models/candidate"),
    version: Annotated[str, typer.Option(help="Version recorded in the manifest and card.")] = "0.1.0",
    optimize: Annotated[bool, typer.Option(help="Fuse attention/LayerNorm/GELU with ORT's transformer optimizer.")] = True,
    quantization: Annotated[Quantization, typer.Option(help="int8 (INT8 weights and INT8 products, activations quantized per block; default), int8-weights (INT8 weights, fp32 compute: more exact, ~30% slower), int8-dynamic (fastest, scores depend on batch-mates, usually refused by the gate) or none.")] = Quantization.int8,
    parity_examples: Annotated[int, typer.Option(min=10, help="Validation texts compared torch vs ONNX.")] = 2000,
    data_dir: DataDir = None, taxonomy: TaxonomyPath = None, seed: Seed = 0,
) -> None:
    """Step 5: ONNX model package in INT8, refused if any category's AUPRC drops > 0.005 or a probability moves > 0.1 (0.02 for the other modes)."""
    from moderation.training.export import ExportConfig, export_package
    from moderation.training.policy import set_seed

    if not (checkpoint / "policy_config.json").is_file():
        fail(f"{checkpoint}: not a policy checkpoint (no policy_config.json)")
    set_seed(seed)
    cfg = ExportConfig(version=version, optimize=optimize, quantization=quantization.value, parity_examples=parity_examples)
    tax = _taxonomy(taxonomy)
    examples = _examples(data_dir, tax)
    manifest = export_package(checkpoint, out, tax, [e for e in examples if e.split == "validation"],
                              [e for e in examples if e.split == "test"], cfg)
    typer.echo(json.dumps({"package": str(out), "version": manifest["version"], "parity": manifest["parity"],
                           "test_macro_auprc": manifest["test_macro_auprc"]}))


# ---------------------------------------------------------------- review (Label Studio)

LSDir = Annotated[Optional[Path], typer.Option("--ls-dir", help="Label Studio data folder (default data/labelstudio or $MODERATION_LABELSTUDIO_DIR).")]
Project = Annotated[str, typer.Option(help="Label Studio project title.")]
StoreDir = Annotated[Path, typer.Option(help="Feedback store folder.")]
LSUrl = Annotated[Optional[str], typer.Option("--url", help="Label Studio URL (default $LABEL_STUDIO_URL or the server we started).")]


def _review_client(ls_dir: Optional[Path], url: Optional[str]):
    from labeling.client import connect
    from labeling.server import data_dir, load_credentials, status

    running = status(ls_dir)
    creds = load_credentials(data_dir(ls_dir), url or (running.get("url") if running.get("running") else None))
    return connect(creds), creds


@review_app.command("serve")
def review_serve(ls_dir: LSDir = None, port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8080,
                 host: Annotated[str, typer.Option(help="Interface; keep loopback unless you know why.")] = "127.0.0.1") -> None:
    """Start a local Label Studio (offline, loopback) and print how to log in. A second start reuses the data."""
    from labeling.server import data_dir, start

    creds = start(ls_dir, host=host, port=port, log=say)
    typer.echo(f"Label Studio is up at {creds.url}\n  log in as {creds.username}; the password and API token are in "
               f"{data_dir(ls_dir) / 'credentials.json'} (or your LABEL_STUDIO_* environment variables)\n"
               f"  stop it with: moderate review stop\n"
               f"  next: moderate review push --n 30   (queues 30 items for review and prints where to open them)")


@review_app.command("stop")
def review_stop(ls_dir: LSDir = None) -> None:
    """Stop the Label Studio server started by `review serve`."""
    from labeling.server import stop

    typer.echo("stopped" if stop(ls_dir) else "no server was running")


@review_app.command("status")
def review_status(ls_dir: LSDir = None) -> None:
    """Is our Label Studio running and healthy?"""
    from labeling.server import status

    s = status(ls_dir)
    typer.echo(json.dumps(s))
    if not s.get("healthy"):
        raise typer.Exit(1)


class Strategy(str, Enum):
    uncertainty = "uncertainty"
    disagreement = "disagreement"
    random = "random"
    audit = "audit"


class PushSplit(str, Enum):
    train = "train"
    validation = "validation"  # never the test split: it only reports, so reviewers never see it


@review_app.command("push")
def review_push(
    input: Annotated[Optional[str], typer.Argument(help="Items to choose from (any `scan` input format); omit to draw from the datasets' --split.")] = None,
    n: Annotated[int, typer.Option(min=1, help="How many items to push.")] = 100,
    strategy: Annotated[Strategy, typer.Option(help="uncertainty, disagreement, random or audit.")] = Strategy.uncertainty,
    k: Annotated[int, typer.Option(min=2, max=8, help="Label-set proposals per item (the most likely first, then sampled ones).")] = 4,
    split: Annotated[PushSplit, typer.Option(help="Dataset split to draw from when no INPUT is given (test is refused: it is for reporting only).")] = PushSplit.train,
    pool: Annotated[int, typer.Option(min=0, help="Score a random sample of this many candidates and choose among them (0: score every candidate; the train split has ~60k, ~10 min).")] = 5000,
    only_simulatable: Annotated[bool, typer.Option(help="Draw only items that `review simulate` can review (datasets that kept each annotator's labels); for trying the loop without people.")] = False,
    model: ModelPath = None, project: Project = "Moderation review",
    text_field: Annotated[str, typer.Option(help="Text key/column of INPUT.")] = "text",
    id_field: Annotated[str, typer.Option(help="Id key/column of INPUT.")] = "id",
    ls_dir: LSDir = None, url: LSUrl = None, data_dir: DataDir = None, seed: Seed = 0,
) -> None:
    """Choose items with a strategy and push them as review tasks with K proposals (pushing twice adds nothing)."""
    from labeling.queue import push_for_review
    from moderation.runtime import Moderator

    if input is not None and only_simulatable:
        fail("--only-simulatable draws from the datasets; it cannot be combined with an INPUT file")
    mod = Moderator.load(model)
    client, creds = _review_client(ls_dir, url)  # before the scoring: a server that is down fails in a second
    if input is None:
        rows = [e for e in _examples(data_dir, mod.taxonomy, split.value) if e.annotators or not only_simulatable]
        ids, texts, sources = [e.id for e in rows], [e.text for e in rows], [e.source for e in rows]
    else:
        rows = _read_rows(input, text_field, id_field)
        ids, texts, sources = [r.id for r in rows], [r.text for r in rows], [input] * len(rows)
    result = push_for_review(client, creds.url, project, mod, ids, texts, sources, n, strategy.value, k, pool, seed, log=say)
    typer.echo(json.dumps(result))
    say(f"{result['created']} new task(s) in project {project!r} ({result['already_present']} already there).\n"
        f"  review them at {creds.url}/projects/{result['project']}/data (log in as {creds.username})\n"
        f"  then: moderate review pull --project {json.dumps(project)}   (or let simulated reviewers work: moderate review simulate)")


@review_app.command("pull")
def review_pull(project: Project = "Moderation review", store: StoreDir = Path("data/feedback"),
                taxonomy: TaxonomyPath = None, ls_dir: LSDir = None, url: LSUrl = None) -> None:
    """Export annotations, validate every result, and add new ones to the feedback store (pulling twice changes nothing).

    Exit code 3 when some annotations were rejected (each is reported; the valid ones are stored).
    """
    from labeling.annotations import pull_feedback
    from moderation.feedback import FeedbackStore

    tax = _taxonomy(taxonomy)
    client, creds = _review_client(ls_dir, url)
    summary, rejected = pull_feedback(client, creds.url, project, tax, FeedbackStore(store, tax.names))
    typer.echo(json.dumps(summary))
    for r in rejected:
        typer.secho(f"rejected: {r}", fg=typer.colors.YELLOW, err=True)
    if rejected:
        raise typer.Exit(ExitCode.ITEM_ERRORS)


@review_app.command("simulate")
def review_simulate(project: Project = "Moderation review",
                    reviewers: Annotated[int, typer.Option(min=1, help="Simulated reviewers (Label Studio users).")] = 3,
                    per_item: Annotated[int, typer.Option(min=1, help="Reviews per item (2+ gives agreement numbers).")] = 1,
                    noise: Annotated[float, typer.Option(min=0.0, max=0.5, help="Slip probability per category and per ranking step.")] = 0.05,
                    limit: Annotated[Optional[int], typer.Option(help="Annotate at most this many tasks.")] = None,
                    taxonomy: TaxonomyPath = None, ls_dir: LSDir = None, url: LSUrl = None, data_dir: DataDir = None,
                    seed: Seed = 0) -> None:
    """Review open tasks as simulated reviewers drawn from the multi-annotator datasets, through the real API.

    A task can be simulated only when its item comes from a dataset that kept each annotator's labels;
    the others stay open for people, and the output says why each was left.
    """
    from labeling.queue import ensure_project
    from labeling.simulate import simulatable_examples, simulate

    tax = _taxonomy(taxonomy)
    examples = _examples(data_dir, tax)
    client, creds = _review_client(ls_dir, url)
    proj = ensure_project(client, creds.url, project, tax)
    try:
        result = simulate(client, creds.url, proj.id, simulatable_examples(examples), tax, reviewers=reviewers, per_item=per_item,
                          noise=noise, limit=limit, seed=seed, known_sources={e.id: e.source for e in examples})
    except ValueError as e:
        fail(str(e))
    typer.echo(json.dumps(result))
    for reason, count in result["not_simulatable_reasons"].items():
        say(f"left open for human reviewers: {count} task(s): {reason}")
    say(f"{result['annotations']} simulated review(s) submitted; next: moderate review pull --project {json.dumps(project)}")


@review_app.command("stats")
def review_stats(store: StoreDir = Path("data/feedback"), taxonomy: TaxonomyPath = None) -> None:
    """Per-category Krippendorff's alpha across reviewers, items reviewed, items per reviewer-hour."""
    from rich.console import Console
    from rich.table import Table

    from labeling.annotations import agreement, throughput
    from moderation.feedback import FeedbackStore

    tax = _taxonomy(taxonomy)
    fb = FeedbackStore(store, tax.names)
    alpha, tp = agreement(fb.judgments(), tax.names), throughput(fb.judgments())
    table = Table(title=f"{tp['reviewed']} reviews of {tp['items']} items ({tp['skipped']} skipped); "
                        f"{tp['items_per_hour'] or 0:.0f} reviews per reviewer-hour")
    table.add_column("category")
    table.add_column("Krippendorff's alpha", justify="right")
    for c in tax.names:
        table.add_row(c, "—" if alpha[c] is None else f"{alpha[c]:.3f}")
    Console().print(table)
    typer.echo(json.dumps({"alpha": alpha, **tp, **fb.stats()}))


# ---------------------------------------------------------------- serve


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
    serve(model, host=host, port=port, store_dir=store, threads=threads,
          config=ServeConfig(max_batch=max_batch, max_wait_ms=max_wait_ms, max_inputs=max_inputs, max_chars=max_chars))


# ---------------------------------------------------------------- registry and the loop

RegistryDir = Annotated[Optional[Path], typer.Option("--registry", help="Registry folder (default data/registry or $MODERATION_REGISTRY).")]


def _registry(root: Optional[Path]):
    from moderation.training.registry import Registry

    return Registry(root)


@registry_app.command("list")
def registry_list(registry: RegistryDir = None,
                  as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Every version with its test metrics, status and gate decision; production marked."""
    from dataclasses import asdict

    from rich.console import Console

    from moderation.training.registry import listing

    reg = _registry(registry)
    if as_json:
        prod = reg.production()
        typer.echo(json.dumps({"production": prod.version if prod else None, "history": reg.history,
                               "versions": [asdict(v) for v in reg.list()]}, indent=2))
        return
    table, refused = listing(reg)
    console = Console(width=min(Console().width, 80))
    console.print(table)
    for line in refused:
        console.print(line, soft_wrap=False)
    console.print("details and package paths: moderate registry list --json")


@registry_app.command("add")
def registry_add(
    package: Annotated[Path, typer.Argument(help="Model package folder (from `moderate export`).")],
    checkpoint: Annotated[Optional[Path], typer.Option(help="The torch checkpoint it was exported from (needed to run the loop from it).")] = None,
    version: Annotated[Optional[str], typer.Option(help="Version name (default: the package manifest's).")] = None,
    promote: Annotated[bool, typer.Option(help="Run the gate and promote right away.")] = True,
    registry: RegistryDir = None, data_dir: DataDir = None,
) -> None:
    """Register a package with its test metrics (measured now if its export report predates them)."""
    from moderation.training.registry import add_package

    reg = _registry(registry)
    v = add_package(reg, package, checkpoint, version, lambda tax: _examples(data_dir, tax, "test"), log=say)
    typer.echo(f"registered {v.version}: macro AUPRC {v.metrics['macro_auprc']:.4f}, utility {v.metrics['utility_cost_optimal']:.4f}")
    if promote:
        _promote(reg, v.version, force=False)


def _promote(reg, version: str, force: bool) -> None:
    result = reg.promote(version, force=force)
    if result.passed:
        typer.echo(f"{version} is in production ({'; '.join(result.reasons) or 'gate passed'})")
    elif force:
        typer.secho(f"{version} promoted with --force although the gate refused it: " + "; ".join(result.reasons), fg=typer.colors.YELLOW)
    else:
        fail(f"gate refused {version}:\n  " + "\n  ".join(result.reasons), ExitCode.GATE_FAILED)


@registry_app.command("promote")
def registry_promote(version: Annotated[str, typer.Argument(help="Registered version to put in production.")],
                     force: Annotated[bool, typer.Option(help="Promote even if the gate refuses (recorded in the registry).")] = False,
                     registry: RegistryDir = None) -> None:
    """Gate a version against production and promote it (exit code 4 when the gate refuses)."""
    _promote(_registry(registry), version, force)


@registry_app.command("rollback")
def registry_rollback(registry: RegistryDir = None) -> None:
    """Put the previous production version back."""
    reg = _registry(registry)
    typer.echo(f"production is {reg.rollback().version} again ({reg.root / 'production'})")


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
    method: Annotated[Method, typer.Option(help="rl: reward model + RL; sft+rl: fine-tune on corrections first; sft: corrections only.")] = Method.rl,
    rl_steps: Annotated[int, typer.Option(min=1, help="Policy-gradient steps of RL fine-tuning (more: moves further from the current model).")] = 100,
    kl_beta: Annotated[float, typer.Option(min=0.0, help="Weight of the KL leash to the current model (larger: smaller, safer changes).")] = 0.05,
    policy: Annotated[Optional[Path], typer.Option(help="Torch checkpoint to improve (default: production's).")] = None,
    project: Project = "Moderation review", store: StoreDir = Path("data/feedback"), registry: RegistryDir = None,
    ls_dir: LSDir = None, url: LSUrl = None, data_dir: DataDir = None, seed: Seed = 0,
) -> None:
    """One iteration: select, push, review, pull, reward model, RL, export, and promote only if the gate passes."""
    from moderation.training.improve import ImproveConfig
    from moderation.training.loop import LoopConfig, run_from_registry, verdict
    from moderation.training.rl import RLConfig

    cfg = LoopConfig(project=project, n=n, strategy=strategy.value, simulate=simulate, wait_seconds=wait * 60, method=method.value,
                     improve=ImproveConfig(rl=RLConfig(steps=rl_steps, kl_beta=kl_beta)), seed=seed)
    client, creds = _review_client(ls_dir, url)
    rows = _read_rows(input) if input is not None else None
    report = run_from_registry(cfg, client, creds.url, _registry(registry), store, data_dir, rows, input, policy, log=say)
    typer.echo(json.dumps({k: report.get(k) for k in ("version", "parent", "promoted", "gate", "export", "reward_model", "timings",
                                                      "seconds")}, default=float))
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
