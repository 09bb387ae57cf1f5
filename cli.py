"""`moderate`: the command-line face of the toolkit.

    moderate scan INPUT            score a file (or stdin) with a model package
    moderate data stats            what the datasets hold, per source, split and category
    moderate train sft             step 1: supervised fine-tuning of the policy
    moderate eval CHECKPOINT       metrics, tuned thresholds, report and PR curves
    moderate export CHECKPOINT     step 5: ONNX INT8 model package with a parity gate

Heavy imports (torch, transformers) happen inside the commands that need them, so `moderate scan`
starts fast and runs without torch installed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Content moderation you own: train, review, improve and run a moderation model on your own CPUs.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
data_app = typer.Typer(help="Inspect the training datasets.", no_args_is_help=True)
train_app = typer.Typer(help="Train models (step 1: supervised policy).", no_args_is_help=True)
review_app = typer.Typer(help="Step 2: human review in Label Studio (server, queues, feedback, simulated reviewers).",
                         no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
registry_app = typer.Typer(help="Model versions, their metrics, promotion through the gate, rollback.", no_args_is_help=True)
app.add_typer(review_app, name="review")
app.add_typer(registry_app, name="registry")

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


DataDir = Annotated[Optional[Path], typer.Option(help="Folder holding the datasets (default: ../shared/datasets or $MODERATION_DATA_DIR).")]
TaxonomyPath = Annotated[Optional[Path], typer.Option(help="Your own taxonomy TOML (default: the shipped one).")]
Seed = Annotated[int, typer.Option(help="Random seed: splits stay fixed; sampling and initialisation follow it.")]


class ExitCode:
    """Documented exit codes (README, 'Exit codes')."""

    OK = 0
    BAD_INPUT = 2  # unreadable/malformed input, bad option, invalid taxonomy or model package
    ITEM_ERRORS = 3  # scan finished with --on-error skip but some items were skipped
    GATE_FAILED = 4  # export parity gate or promotion gate refused the model
    INTERRUPTED = 130


def fail(message: str, code: int = ExitCode.BAD_INPUT) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _taxonomy(path: Optional[Path]):
    from moderation.taxonomy import TaxonomyError, load_taxonomy

    try:
        return load_taxonomy(path)
    except TaxonomyError as e:
        fail(str(e))


def _examples(data_dir: Optional[Path], taxonomy, sources: Optional[list[str]] = None):
    """The datasets with their fixed splits: `--seed` never moves the test split."""
    from moderation.data import DataError, load_examples

    try:
        return load_examples(data_dir, sources=sources, taxonomy=taxonomy, seed=0)
    except DataError as e:
        fail(str(e))


# ---------------------------------------------------------------- data


@data_app.command("stats")
def data_stats(data_dir: DataDir = None, taxonomy: TaxonomyPath = None) -> None:
    """Examples per source and split, and per category positives/labelled (soft label >= 0.5 counts as positive)."""
    from rich.console import Console
    from rich.table import Table

    from moderation.data import SOURCE_TABLE, stats

    tax = _taxonomy(taxonomy)
    examples = _examples(data_dir, tax)
    table = Table(title=f"{len(examples)} examples after deduplication (cells: positives / labelled; blank = unknown, masked)")
    table.add_column("source")
    table.add_column("split")
    table.add_column("n", justify="right")
    for c in tax.names:
        table.add_column(c, justify="right")
    for row in stats(examples, tax.names):
        table.add_row(row["source"], row["split"], str(row["n"]),
                      *[(f"{row[c][0]}/{row[c][1]}" if row[c][1] else "") for c in tax.names])
    console = Console()
    console.print(table)
    rules = Table(title="What each source may teach (moderation/data.py SOURCE_TABLE)")
    for col in ("source", "judged", "assumed negative", "negative if clean", "license"):
        rules.add_column(col)
    for name, rule in SOURCE_TABLE.items():
        rules.add_row(name, ", ".join(rule.labels), ", ".join(rule.assumed_negative), ", ".join(rule.negative_if_clean), rule.license)
    console.print(rules)


# ---------------------------------------------------------------- train


class Finetune(str, Enum):
    full = "full"
    lora = "lora"


@train_app.command("sft")
def train_sft_cmd(
    out: Annotated[Path, typer.Option(help="Checkpoint folder (resumes from it if it holds a saved state).")] = Path("runs/sft"),
    finetune: Annotated[Finetune, typer.Option(help="Full fine-tune, or LoRA adapters on the encoder.")] = Finetune.full,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the (per-source capped) training set; the best validation epoch is kept.")] = 3,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per optimisation step.")] = 32,
    lr: Annotated[Optional[float], typer.Option(help="Encoder learning rate (default 5e-5 full, 5e-4 LoRA).")] = None,
    max_per_source: Annotated[int, typer.Option(help="Examples per source per epoch (0 = all).")] = 8000,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps (smoke runs).")] = None,
    bf16: Annotated[str, typer.Option(help="bf16 autocast: auto (when the CPU has native bf16), on, off.")] = "auto",
    resume: Annotated[bool, typer.Option(help="Resume from OUT/state if present.")] = True,
    exclude_source: Annotated[Optional[list[str]], typer.Option(help="Leave this source out of training and validation (repeat for several): for out-of-domain measurement.")] = None,
    context_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of short training texts also trained inside benign context (harm anywhere in a text).")] = 0.2,
    templates: Annotated[int, typer.Option(min=0, help="Hand-written template texts per family (moderation/templates.py); 0 = none.")] = 300,
    data_dir: DataDir = None,
    taxonomy: TaxonomyPath = None,
    seed: Seed = 0,
) -> None:
    """Step 1: supervised fine-tuning of the policy on the shared datasets (masked soft-label BCE)."""
    from moderation.policy import PolicyModel, set_seed
    from moderation.sft import SFTConfig, train_sft
    from moderation.training_set import TrainingSetConfig, build_training_set

    if bf16 not in ("auto", "on", "off"):
        fail(f"--bf16 must be auto, on or off, got {bf16!r}")
    tax = _taxonomy(taxonomy)
    examples = _examples(data_dir, tax)
    try:
        tcfg = TrainingSetConfig(exclude_sources=tuple(exclude_source or ()), context_fraction=context_fraction,
                                 templates_per_family=templates, seed=seed)
    except ValueError as e:
        fail(str(e))
    train, validation = build_training_set(examples, tcfg)
    set_seed(seed)
    model = PolicyModel.from_base(tax.names, finetune=finetune.value)
    cfg = SFTConfig(epochs=epochs, batch_size=batch_size, lr=lr or (5e-5 if finetune == Finetune.full else 5e-4),
                    max_per_source=max_per_source or None, max_steps=max_steps, bf16=bf16, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "training_set.json").write_text(json.dumps({**asdict(tcfg), "train_examples": len(train),
                                                       "validation_examples": len(validation)}, indent=2))
    summary = train_sft(model, train, validation, out, cfg, resume=resume)
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
    taxonomy: TaxonomyPath = None,
    seed: Seed = 0,
) -> None:
    """Step 3: Bradley-Terry reward model on the store's preference pairs; held-out accuracy vs two baselines."""
    from moderation.feedback import FeedbackStore
    from moderation.improve import ImproveConfig, fit_reward, split_items
    from moderation.policy import PolicyModel

    tax = _taxonomy(taxonomy)
    cfg = ImproveConfig(holdout=holdout, reward_epochs=epochs, seed=seed)
    train_js, held_js = split_items(FeedbackStore(store, tax.names).judgments(), holdout, seed)
    try:
        model, report = fit_reward(PolicyModel.load(policy), train_js, held_js, tax, cfg, log=lambda m: typer.echo(m, err=True))
    except ValueError as e:
        fail(f"{store}: {e}")
    model.save(out)
    (out / "reward_report.json").write_text(json.dumps(report, indent=2))
    typer.echo(json.dumps(report))


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
    data_dir: DataDir = None,
    taxonomy: TaxonomyPath = None,
    seed: Seed = 0,
) -> None:
    """Step 4: policy-gradient fine-tuning (LoRA) against the reward model, with a KL leash and a reward-hacking guard."""
    from moderation.feedback import FeedbackStore
    from moderation.improve import ImproveConfig, embedding_table, feedback_data, rl_on_feedback
    from moderation.policy import PolicyModel
    from moderation.reward import RewardModel
    from moderation.rl import RLConfig

    tax = _taxonomy(taxonomy)
    cfg = ImproveConfig(holdout=holdout, seed=seed, rl=RLConfig(steps=steps, group_size=group_size, kl_beta=kl_beta, lr=lr))
    fb = feedback_data(FeedbackStore(store, tax.names).judgments(), len(tax), holdout, seed, _pool_texts(pool, data_dir, tax),
                       pool_size)
    if not fb.held_texts:
        fail(f"{store}: no held-out reviewed items to measure RL against; pull more reviews first")
    pol = PolicyModel.load(policy)
    typer.echo("embedding the pool and held-out texts for the reward model…", err=True)
    embed = embedding_table(pol, fb.rl_pool + fb.held_texts)
    hist = rl_on_feedback(pol, RewardModel.load(reward), embed, fb.rl_pool, fb.held_texts, fb.held_gold, tax, cfg, out_dir=out,
                          log=lambda msg: typer.echo(msg, err=True))
    typer.echo(json.dumps({"best_step": hist.best_step, "stopped_for_reward_hacking": hist.stopped_for_reward_hacking,
                           "final": hist.rows[-1], "out": str(out)}))


def _pool_texts(pool: Optional[str], data_dir: Optional[Path], tax) -> list[str]:
    if pool is None:
        return [e.text for e in _examples(data_dir, tax) if e.split == "train"]
    return [r.text for r in _read_rows(pool)]


# ---------------------------------------------------------------- scan


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
    model: Annotated[Optional[Path], typer.Option(help="Model package folder (default: the shipped model, or $MODERATION_MODEL).")] = None,
    format: Annotated[Optional[str], typer.Option("--format", help="Input format when the name does not say: jsonl, csv, txt, parquet.")] = None,
    text_field: Annotated[str, typer.Option(help="JSONL key / CSV or Parquet column holding the text.")] = "text",
    id_field: Annotated[Optional[str], typer.Option(help="Key / column holding the item id (default: the line number).")] = "id",
    only_flagged: Annotated[bool, typer.Option(help="Write only items flagged in some category.")] = False,
    on_error: Annotated[OnError, typer.Option(help="fail: stop at the first bad item. skip: write it to the errors file and go on.")] = OnError.fail,
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
    from moderation.package import ModelPackageError
    from moderation.runtime import Moderator
    from moderation.scan import ResultWriter, ScanError, ScoreCache, detect_format, read_items, resume_point, scan as run_scan

    try:
        fmt = detect_format(input, format)
        out_fmt = "csv" if out.lower().endswith(".csv") else "jsonl"
        if resume and (out == "-" or out_fmt != "jsonl"):
            raise ScanError("--resume needs a JSONL output file (--out results.jsonl)")
        start_after = resume_point(Path(out)) if resume else 0
        moderator = Moderator.load(model, threads=threads, batch_size=batch_size, max_chars=max_chars)
    except (ScanError, ModelPackageError, ValueError, RuntimeError) as e:
        fail(str(e))
    if start_after:
        typer.echo(f"resuming after input line {start_after}", err=True)
    items = read_items(input, fmt, text_field=text_field, id_field=id_field or None)
    mode = "a" if resume else "w"
    out_stream = sys.stdout if out == "-" else open(out, mode, encoding="utf-8", newline="")
    err_path = errors or (Path(f"{out}.errors.jsonl") if out != "-" else Path("scan-errors.jsonl"))
    err_stream = open(err_path, mode, encoding="utf-8") if on_error == OnError.skip else None
    writer = ResultWriter(out_stream, out_fmt, moderator.categories)
    options = dict(on_error=on_error.value, errors_stream=err_stream, only_flagged=only_flagged, source=input,
                   progress=progress, start_after=start_after, durable=fsync and out != "-")
    cache = ScoreCache(cache_size) if cache_size else None
    try:
        if engine == Engine.ray:
            from moderation.scan_ray import scan_with_ray

            summary = scan_with_ray(moderator, input, fmt, writer, text_field=text_field, id_field=id_field or None,
                                    workers=workers, threads=threads, address=ray_address, cache_size=cache_size, **options)
        else:
            summary = run_scan(moderator, items, writer, cache=cache, **options)
    except ScanError as e:
        fail(str(e))
    except KeyboardInterrupt:
        typer.secho("interrupted: results so far are in the output", err=True)
        raise typer.Exit(ExitCode.INTERRUPTED)
    finally:
        if out_stream is not sys.stdout:
            out_stream.close()
        if err_stream is not None:
            err_stream.close()
    _print_scan_summary(summary, moderator, out, err_path if summary.skipped else None)
    if cache is not None and cache.hits and engine == Engine.local:
        typer.echo(f"cache: {cache.hits} repeated texts reused their scores ({cache.misses} scored)", err=True)
    if summary.skipped:
        raise typer.Exit(ExitCode.ITEM_ERRORS)


def _print_scan_summary(summary, moderator, out: str, err_path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    table = Table(title=f"{summary.scored} texts scored in {summary.seconds:.1f}s ({summary.texts_per_second:.0f} texts/s), "
                        f"model {moderator.version}")
    table.add_column("category")
    table.add_column("flagged", justify="right")
    table.add_column("share", justify="right")
    for c in moderator.categories:
        n = summary.per_category.get(c, 0)
        table.add_row(c, str(n), f"{n / summary.scored:.1%}" if summary.scored else "—")
    console.print(table)
    console.print(f"decisions: allow {summary.decisions.get('allow', 0)}, review {summary.decisions.get('review', 0)}, "
                  f"block {summary.decisions.get('block', 0)}; flagged {summary.flagged}"
                  + (f"; output: {out}" if out != "-" else ""))
    if err_path:
        console.print(f"[yellow]{summary.skipped} bad item(s) skipped; see {err_path}[/yellow]")


# ---------------------------------------------------------------- eval / export


@app.command("eval")
def eval_cmd(
    model: Annotated[Path, typer.Argument(help="A policy checkpoint (from `train sft`) or a model package (from `export`).")],
    out: Annotated[Path, typer.Option(help="Report folder: report.json, report.md, pr_curves.png.")] = Path("runs/eval"),
    split: Annotated[str, typer.Option(help="Split to measure on: test or validation.")] = "test",
    data_dir: DataDir = None,
    taxonomy: TaxonomyPath = None,
    seed: Seed = 0,
) -> None:
    """Per-category AUPRC, ROC-AUC, F1 at tuned thresholds and calibration error, overall and per source.

    Thresholds are tuned on the validation split with the same model, then applied to SPLIT.
    """
    from moderation.data import label_matrix
    from moderation.evaluate import evaluate_examples, plot_pr_curves, tune_on_validation, write_report

    if split not in ("test", "validation"):
        fail("--split must be test or validation")
    if (model / "manifest.json").is_file():  # the torch-free path: a package needs no seed and no torch
        from moderation.runtime import Moderator

        runtime = Moderator.load(model)
        tax = runtime.taxonomy if taxonomy is None else _taxonomy(taxonomy)
        score = runtime.score
    elif (model / "policy_config.json").is_file():
        from moderation.policy import PolicyModel, set_seed

        set_seed(seed)
        policy = PolicyModel.load(model)
        tax = _taxonomy(taxonomy)
        score = lambda texts: policy.predict_proba(texts, progress=True)  # noqa: E731
    else:
        fail(f"{model}: neither a model package (manifest.json) nor a policy checkpoint (policy_config.json)")
    examples = _examples(data_dir, tax)
    val = [e for e in examples if e.split == "validation"]
    target = [e for e in examples if e.split == split]
    typer.echo(f"scoring {len(val)} validation texts to tune thresholds, then {len(target)} {split} texts…", err=True)
    thresholds = tune_on_validation(score, val, tax)
    report, probs = evaluate_examples(score, target, tax, thresholds)
    report.update(model=str(model), split=split, thresholds=thresholds.to_json(tax.names))
    write_report(report, out, f"Evaluation of {model} on the {split} split")
    y, m = label_matrix(target, tax.names)
    plot_pr_curves(probs, y, m, tax, out / "pr_curves.png")
    typer.echo((out / "report.md").read_text())


@app.command("check")
def check_cmd(
    model: Annotated[Optional[Path], typer.Argument(help="Model package (default: the shipped one).")] = None,
    min_pass: Annotated[float, typer.Option(min=0.0, max=1.0, help="Exit 4 when any capability passes fewer cases than this.")] = 0.0,
    out: Annotated[Optional[Path], typer.Option(help="Write the full report (with every failure) as JSON here.")] = None,
) -> None:
    """Run the behavioural suite (threats, self-harm, identity mentions, negation, counter-speech, figurative
    language, obfuscation, harm inside long texts, spam, misinformation) and print the pass rate per capability."""
    from moderation.behavioural import cases, run_suite
    from moderation.package import ModelPackageError
    from moderation.runtime import Moderator

    try:
        mod = Moderator.load(model)
    except ModelPackageError as e:
        fail(str(e))
    report = run_suite(mod, cases())
    for cap, r in report["capabilities"].items():
        typer.echo(f"{cap:34s} {r['passed']:3d}/{r['n']:<3d} {r['pass_rate']:6.1%}")
    typer.echo(f"{'all':34s} {report['passed']:3d}/{report['n']:<3d} {report['pass_rate']:6.1%}")
    if out:
        out.write_text(json.dumps(report, indent=2))
    weak = [c for c, r in report["capabilities"].items() if r["pass_rate"] < min_pass]
    if weak:
        fail(f"capabilities below {min_pass:.0%}: {', '.join(weak)}", ExitCode.GATE_FAILED)


@app.command("export")
def export_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Policy checkpoint folder (from `train sft` or `train rl`).")],
    out: Annotated[Path, typer.Option(help="Model package folder to write.")] = Path("models/candidate"),
    version: Annotated[str, typer.Option(help="Version recorded in the manifest and card.")] = "0.1.0",
    optimize: Annotated[bool, typer.Option(help="Fuse attention/LayerNorm/GELU with ORT's transformer optimizer.")] = True,
    quantization: Annotated[str, typer.Option(help="int8 (INT8 weights and INT8 products, activations quantized per block; default), int8-weights (INT8 weights, fp32 compute: more exact, ~30% slower), int8-dynamic (fastest, scores depend on batch-mates, usually refused by the gate) or none.")] = "int8",
    parity_examples: Annotated[int, typer.Option(min=10, help="Validation texts compared torch vs ONNX.")] = 2000,
    data_dir: DataDir = None,
    taxonomy: TaxonomyPath = None,
    seed: Seed = 0,
) -> None:
    """Step 5: ONNX model package in INT8, refused if any category's AUPRC drops > 0.005 or a probability moves > 0.1 (0.02 for the other modes)."""
    from moderation.export import ExportConfig, ParityError, export_package
    from moderation.policy import set_seed

    set_seed(seed)
    if not (checkpoint / "policy_config.json").is_file():
        fail(f"{checkpoint}: not a policy checkpoint (no policy_config.json)")
    tax = _taxonomy(taxonomy)
    examples = _examples(data_dir, tax)
    cfg = ExportConfig(version=version, optimize=optimize, quantization=quantization, parity_examples=parity_examples)
    try:
        manifest = export_package(checkpoint, out, tax, [e for e in examples if e.split == "validation"],
                                  [e for e in examples if e.split == "test"], cfg)
    except ParityError as e:
        fail(str(e), ExitCode.GATE_FAILED)
    typer.echo(json.dumps({"package": str(out), "version": manifest["version"], "parity": manifest["parity"],
                           "test_macro_auprc": manifest["test_macro_auprc"]}))


# ---------------------------------------------------------------- review (Label Studio)

LSDir = Annotated[Optional[Path], typer.Option("--ls-dir", help="Label Studio data folder (default data/labelstudio or $MODERATION_LABELSTUDIO_DIR).")]
Project = Annotated[str, typer.Option(help="Label Studio project title.")]
StoreDir = Annotated[Path, typer.Option(help="Feedback store folder.")]
LSUrl = Annotated[Optional[str], typer.Option("--url", help="Label Studio URL (default $LABEL_STUDIO_URL or the server we started).")]


def _review_client(ls_dir: Optional[Path], url: Optional[str]):
    from labeling.client import connect
    from labeling.server import LabelStudioError, data_dir, load_credentials, status

    try:
        running = status(ls_dir)
        creds = load_credentials(data_dir(ls_dir), url or (running.get("url") if running.get("running") else None))
        return connect(creds), creds
    except LabelStudioError as e:
        fail(str(e))


@review_app.command("serve")
def review_serve(ls_dir: LSDir = None, port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8080,
                 host: Annotated[str, typer.Option(help="Interface; keep loopback unless you know why.")] = "127.0.0.1") -> None:
    """Start a local Label Studio (offline, loopback) and print how to log in. A second start reuses the data."""
    from labeling.server import LabelStudioError, data_dir, start

    try:
        creds = start(ls_dir, host=host, port=port, log=lambda m: typer.echo(m, err=True))
    except LabelStudioError as e:
        fail(str(e))
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
    model: Annotated[Optional[Path], typer.Option(help="Model package proposing labels (default: the shipped one).")] = None,
    project: Project = "Moderation review",
    text_field: Annotated[str, typer.Option(help="Text key/column of INPUT.")] = "text",
    id_field: Annotated[str, typer.Option(help="Id key/column of INPUT.")] = "id",
    ls_dir: LSDir = None, url: LSUrl = None, data_dir: DataDir = None, seed: Seed = 0,
) -> None:
    """Choose items with a strategy and push them as review tasks with K proposals (pushing twice adds nothing)."""
    import numpy as np
    from tqdm import tqdm

    from labeling.queue import QueueItem, ensure_project, push, select
    from labeling.server import LabelStudioError
    from moderation.package import ModelPackageError
    from moderation.runtime import Moderator
    from moderation.scan import ScanError, detect_format, read_items

    try:
        mod = Moderator.load(model)
    except ModelPackageError as e:
        fail(str(e))
    client, creds = _review_client(ls_dir, url)  # before the scoring: a server that is down fails in a second
    if input is not None and only_simulatable:
        fail("--only-simulatable draws from the datasets; it cannot be combined with an INPUT file")
    if input is None:
        candidates = [e for e in _examples(data_dir, mod.taxonomy) if e.split == split.value and (e.annotators or not only_simulatable)]
        ids, texts, sources = [e.id for e in candidates], [e.text for e in candidates], [e.source for e in candidates]
    else:
        try:
            rows = [r for r in read_items(input, detect_format(input, None), text_field, id_field) if hasattr(r, "text")]
        except ScanError as e:
            fail(str(e))
        ids, texts, sources = [r.id for r in rows], [r.text for r in rows], [input] * len(rows)
    if pool and len(texts) > pool:
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), pool, replace=False))
        typer.echo(f"drawing a random pool of {pool} of the {len(texts)} candidates (--pool 0 scores them all)", err=True)
        ids, texts, sources = [ids[i] for i in keep], [texts[i] for i in keep], [sources[i] for i in keep]
    scores = []
    with tqdm(total=len(texts), desc="scoring candidates", unit=" texts", file=sys.stderr, dynamic_ncols=True) as bar:
        for i in range(0, len(texts), 256):
            scores.extend(mod.score(texts[i : i + 256]))
            bar.update(len(texts[i : i + 256]))
    items = [QueueItem(i, t, s, src) for i, t, s, src in zip(ids, texts, scores, sources)]
    chosen = select(items, n, strategy.value, mod.review_thresholds, k=k, seed=seed)
    try:
        proj = ensure_project(client, creds.url, project, mod.taxonomy)
        result = push(client, creds.url, proj.id, chosen, mod.taxonomy, mod.version, mod.review_thresholds, k=k, seed=seed)
    except LabelStudioError as e:
        fail(str(e))
    typer.echo(json.dumps({"project": proj.id, "strategy": strategy.value, "scored": len(texts), **result}))
    typer.echo(f"{result['created']} new task(s) in project {project!r} ({result['already_present']} already there).\n"
               f"  review them at {creds.url}/projects/{proj.id}/data (log in as {creds.username})\n"
               f"  then: moderate review pull --project {json.dumps(project)}   (or let simulated reviewers work: "
               f"moderate review simulate)", err=True)


@review_app.command("pull")
def review_pull(project: Project = "Moderation review", store: StoreDir = Path("data/feedback"),
                taxonomy: TaxonomyPath = None, ls_dir: LSDir = None, url: LSUrl = None) -> None:
    """Export annotations, validate every result, and add new ones to the feedback store (pulling twice changes nothing).

    Exit code 3 when some annotations were rejected (each is reported; the valid ones are stored).
    """
    from labeling.annotations import export_tasks, tasks_to_judgments
    from labeling.queue import ensure_project
    from labeling.server import LabelStudioError
    from moderation.feedback import FeedbackStore

    tax = _taxonomy(taxonomy)
    client, creds = _review_client(ls_dir, url)
    try:
        proj = ensure_project(client, creds.url, project, tax)
        tasks = export_tasks(client, creds.url, proj.id)
    except LabelStudioError as e:
        fail(str(e))
    judgments, rejected = tasks_to_judgments(tasks, tax)
    fb = FeedbackStore(store, tax.names)
    new = fb.add(judgments)
    typer.echo(json.dumps({"tasks": len(tasks), "annotations": len(judgments) + len(rejected), "new": new,
                           "rejected": len(rejected), "store": str(store), **fb.stats()}))
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
    from labeling.server import LabelStudioError
    from labeling.simulate import simulatable_examples, simulate

    tax = _taxonomy(taxonomy)
    examples = _examples(data_dir, tax)
    client, creds = _review_client(ls_dir, url)
    try:
        proj = ensure_project(client, creds.url, project, tax)
        result = simulate(client, creds.url, proj.id, simulatable_examples(examples), tax, reviewers=reviewers, per_item=per_item,
                          noise=noise, limit=limit, seed=seed, known_sources={e.id: e.source for e in examples})
    except (LabelStudioError, ValueError) as e:
        fail(str(e))
    typer.echo(json.dumps(result))
    for reason, count in result["not_simulatable_reasons"].items():
        typer.echo(f"left open for human reviewers: {count} task(s): {reason}", err=True)
    typer.echo(f"{result['annotations']} simulated review(s) submitted; next: moderate review pull --project {json.dumps(project)}",
               err=True)


@review_app.command("stats")
def review_stats(store: StoreDir = Path("data/feedback"), taxonomy: TaxonomyPath = None) -> None:
    """Per-category Krippendorff's alpha across reviewers, items reviewed, items per reviewer-hour."""
    from rich.console import Console
    from rich.table import Table

    from labeling.annotations import agreement, throughput
    from moderation.feedback import FeedbackStore

    tax = _taxonomy(taxonomy)
    fb = FeedbackStore(store, tax.names)
    js = fb.judgments()
    alpha = agreement(js, tax.names)
    tp = throughput(js)
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
    model: Annotated[Optional[Path], typer.Option(help="Model package folder (default: the shipped model, or $MODERATION_MODEL).")] = None,
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

    from moderation.package import ModelPackageError
    from moderation.serve import TOKEN_ENV, ServeConfig, serve

    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(f"warning: binding {host}: the server is reachable from other machines", fg=typer.colors.YELLOW, err=True)
    if not os.environ.get(TOKEN_ENV):
        typer.secho(f"warning: {TOKEN_ENV} is not set, so every route is open to anyone who can reach "
                    f"{host}:{port}; set it to require `Authorization: Bearer <token>`", fg=typer.colors.YELLOW, err=True)
    try:
        serve(model, host=host, port=port, store_dir=store, threads=threads,
              config=ServeConfig(max_batch=max_batch, max_wait_ms=max_wait_ms, max_inputs=max_inputs, max_chars=max_chars))
    except ModelPackageError as e:
        fail(str(e))


# ---------------------------------------------------------------- registry and the loop

RegistryDir = Annotated[Optional[Path], typer.Option("--registry", help="Registry folder (default data/registry or $MODERATION_REGISTRY).")]


def _registry(root: Optional[Path]):
    from moderation.registry import Registry, RegistryError

    try:
        return Registry(root)
    except RegistryError as e:
        fail(str(e))


@registry_app.command("list")
def registry_list(registry: RegistryDir = None,
                  as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Every version with its test metrics, status and gate decision; production marked."""
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    reg = _registry(registry)
    prod = reg.production()
    if as_json:
        typer.echo(json.dumps({"production": prod.version if prod else None, "history": reg.history,
                               "versions": [asdict(v) for v in reg.list()]}, indent=2))
        return
    # Fits 80 columns: one short row per version, the gate's reasons on their own lines below the table.
    table = Table(title=f"production: {prod.version if prod else '(none)'}  ({reg.root})", title_justify="left")
    for col, kw in (("version", {}), ("status", {}), ("parent", {}), ("created", {}), ("AUPRC", {"justify": "right"}),
                    ("utility", {"justify": "right"}), ("gate", {})):
        table.add_column(col, no_wrap=True, **kw)
    refused = []
    for v in reg.list():
        m = v.metrics
        gate = "" if v.gate is None else ("passed" if v.gate["passed"] else "refused")
        if v.gate is not None and not v.gate["passed"]:
            refused.append((v.version, v.gate["reasons"]))
        table.add_row(v.version + (" *" if prod and v.version == prod.version else ""), v.status, v.parent or "",
                      v.created[:10], f"{m.get('macro_auprc', float('nan')):.3f}", f"{m.get('utility_cost_optimal', float('nan')):.3f}", gate)
    console = Console(width=min(Console().width, 80))
    console.print(table)
    for version, reasons in refused:
        console.print(f"{version} refused: " + "; ".join(reasons), soft_wrap=False)
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
    from moderation.package import ModelPackageError, read_manifest
    from moderation.registry import RegistryError, has_utility, package_metrics

    reg = _registry(registry)
    try:
        manifest = read_manifest(package)
        version = version or manifest["version"]
        test = None
        if not has_utility(package):
            tax = _taxonomy(package / "taxonomy.toml")
            test = [e for e in _examples(data_dir, tax) if e.split == "test"]
            typer.echo(f"measuring {package} on {len(test)} test texts…", err=True)
        v = reg.add(version, package, package_metrics(package, test), checkpoint=checkpoint)
        typer.echo(f"registered {v.version}: macro AUPRC {v.metrics['macro_auprc']:.4f}, utility {v.metrics['utility_cost_optimal']:.4f}")
    except (ModelPackageError, RegistryError) as e:
        fail(str(e))
    if promote:
        _promote(reg, version, force=False)


def _promote(reg, version: str, force: bool) -> None:
    from moderation.registry import RegistryError

    try:
        result = reg.promote(version, force=force)
    except RegistryError as e:
        fail(str(e))
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
    from moderation.registry import RegistryError

    reg = _registry(registry)
    try:
        back = reg.rollback()
    except RegistryError as e:
        fail(str(e))
    typer.echo(f"production is {back.version} again ({reg.root / 'production'})")


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
    from labeling.server import LabelStudioError
    from moderation.feedback import FeedbackStore
    from moderation.improve import ImproveConfig
    from moderation.loop import LoopConfig, run_iteration, verdict
    from moderation.rl import RLConfig

    reg = _registry(registry)
    prod = reg.production()
    if prod is None:
        fail(f"{reg.root}: no production model yet; first `moderate registry add models/default --checkpoint CHECKPOINT`")
    tax = _taxonomy(reg.resolve(prod.package) / "taxonomy.toml")
    examples = _examples(data_dir, tax)
    if input is not None:
        from moderation.data import Example

        rows = _read_rows(input)
        candidates = [Example(id=r.id, text=r.text, source=input, split="candidate", labels={}) for r in rows]
    else:
        candidates = [e for e in examples if e.split == "validation" and (e.annotators or not simulate)]
    cfg = LoopConfig(project=project, n=n, strategy=strategy.value, simulate=simulate, wait_seconds=wait * 60, method=method.value,
                     improve=ImproveConfig(rl=RLConfig(steps=rl_steps, kl_beta=kl_beta)), seed=seed)
    client, creds = _review_client(ls_dir, url)
    try:
        report = run_iteration(cfg, client, creds.url, reg, FeedbackStore(store, tax.names), examples, tax, candidates,
                               policy_checkpoint=policy, log=lambda m: typer.echo(m, err=True))
    except (LabelStudioError, RuntimeError, ValueError) as e:
        fail(str(e))
    typer.echo(json.dumps({k: report.get(k) for k in ("version", "parent", "promoted", "gate", "export", "reward_model", "timings",
                                                      "seconds")}, default=float))
    export = report.get("export") or {}
    if "int8_refused" in export:
        typer.secho(f"INT8 export refused by the parity gate, exported in fp32: {export['int8_refused']}", fg=typer.colors.YELLOW, err=True)
    typer.secho("\n" + verdict(report), fg=typer.colors.GREEN if report.get("promoted") else typer.colors.YELLOW, err=True)
    if not report.get("promoted"):
        raise typer.Exit(ExitCode.GATE_FAILED)


def _read_rows(input: str):
    from moderation.scan import ScanError, detect_format, read_items

    try:
        return [r for r in read_items(input, detect_format(input, None), "text", "id") if hasattr(r, "text")]
    except ScanError as e:
        fail(str(e))


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
