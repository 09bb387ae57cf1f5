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
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Content moderation you own: train, review, improve and run a moderation model on your own CPUs.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
data_app = typer.Typer(help="Inspect the training datasets.", no_args_is_help=True)
train_app = typer.Typer(help="Train models (step 1: supervised policy).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")

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


def _examples(data_dir: Optional[Path], taxonomy, seed: int = 0, sources: Optional[list[str]] = None):
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
    epochs: Annotated[int, typer.Option(min=1)] = 3,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    lr: Annotated[Optional[float], typer.Option(help="Encoder learning rate (default 5e-5 full, 5e-4 LoRA).")] = None,
    max_per_source: Annotated[int, typer.Option(help="Examples per source per epoch (0 = all).")] = 8000,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps (smoke runs).")] = None,
    bf16: Annotated[str, typer.Option(help="bf16 autocast: auto (when the CPU has native bf16), on, off.")] = "auto",
    resume: Annotated[bool, typer.Option(help="Resume from OUT/state if present.")] = True,
    data_dir: DataDir = None,
    taxonomy: TaxonomyPath = None,
    seed: Seed = 0,
) -> None:
    """Step 1: supervised fine-tuning of the policy on the shared datasets (masked soft-label BCE)."""
    from moderation.policy import PolicyModel, set_seed
    from moderation.sft import SFTConfig, train_sft

    if bf16 not in ("auto", "on", "off"):
        fail(f"--bf16 must be auto, on or off, got {bf16!r}")
    tax = _taxonomy(taxonomy)
    examples = _examples(data_dir, tax)
    train = [e for e in examples if e.split == "train"]
    validation = [e for e in examples if e.split == "validation"]
    set_seed(seed)
    model = PolicyModel.from_base(tax.names, finetune=finetune.value)
    cfg = SFTConfig(epochs=epochs, batch_size=batch_size, lr=lr or (5e-5 if finetune == Finetune.full else 5e-4),
                    max_per_source=max_per_source or None, max_steps=max_steps, bf16=bf16, seed=seed)
    summary = train_sft(model, train, validation, out, cfg, resume=resume)
    if summary["interrupted"]:
        raise typer.Exit(ExitCode.INTERRUPTED)
    typer.echo(json.dumps({k: summary[k] for k in ("best_epoch", "best_val_macro_auprc", "train_seconds", "stopped_early")}))


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
