"""`moderate data`, `moderate train` (steps 1, 3 and 4 of the loop), and the `eval` and `export` commands
(registered on the root app in cli.py)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from commands.common import (
    DataDir,
    ExitCode,
    Seed,
    TaxonomyPath,
    dataset_examples,
    fail,
    load_taxonomy_option,
    new_app,
    read_rows,
    say,
)

data_app = new_app("Inspect the training datasets.")
train_app = new_app("Train models (step 1: supervised policy; 3: reward model; 4: RL).")


@data_app.command("stats")
def data_stats(data_dir: DataDir = None, taxonomy: TaxonomyPath = None) -> None:
    """Examples per source and split, and per category positives/labelled (soft label >= 0.5 counts as positive)."""
    from rich.console import Console

    from moderation.training.data import stats_tables

    tax = load_taxonomy_option(taxonomy)
    for table in stats_tables(dataset_examples(data_dir, tax), tax.names):
        Console().print(table)


class Finetune(str, Enum):
    full = "full"
    lora = "lora"


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"


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
    bf16: Annotated[BF16, typer.Option(help="bf16 autocast: auto (on a GPU, or a CPU with native bf16), on, off.")] = BF16.auto,
    resume: Annotated[bool, typer.Option(help="Resume from OUT/state if present.")] = True,
    device: Annotated[Device, typer.Option(help="Where to train: cpu, cuda (an error without a GPU), or auto.")] = Device.cpu,
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
    tax = load_taxonomy_option(taxonomy)
    summary = train_from_datasets(out, dataset_examples(data_dir, tax), tax.names, tcfg, cfg, finetune=finetune.value, resume=resume,
                                  device=device.value)
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
    data_dir: DataDir = None, taxonomy: TaxonomyPath = None, seed: Seed = 0,
) -> None:
    """Step 3: Bradley-Terry reward model on the store's preference pairs; held-out accuracy vs two baselines.
    Judgments of test- or gate-split dataset items are left out, however they reached the store."""
    from moderation.training.data import held_back_ids
    from moderation.training.improve import ImproveConfig, train_reward_from_store

    tax = load_taxonomy_option(taxonomy)
    cfg = ImproveConfig(holdout=holdout, reward_epochs=epochs, seed=seed)
    held_back = held_back_ids(dataset_examples(data_dir, tax))
    typer.echo(json.dumps(train_reward_from_store(store, policy, out, tax, cfg, held_back=held_back, log=say)))


@train_app.command("spans")
def train_spans_cmd(
    policy: Annotated[Path, typer.Option(help="Policy checkpoint whose frozen encoder the span head reads.")] = Path("runs/sft-default"),
    out: Annotated[Path, typer.Option(help="Where the policy with its span head is saved (a new checkpoint).")] = Path("runs/sft-spans"),
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the rated posts; the best SemEval-trial epoch is kept.")] = 10,
    data_dir: DataDir = None, seed: Seed = 0,
) -> None:
    """Train the span head on the toxic_spans raters' spans (the SemEval-2021 test posts are never read);
    the epoch and the span threshold are chosen on the SemEval trial posts. Export the result as usual."""
    from moderation.training.spans import SpanHeadConfig, add_span_head

    report = add_span_head(policy, out, data_dir, SpanHeadConfig(epochs=epochs, seed=seed), log=say)
    typer.echo(json.dumps({k: v for k, v in report.items() if k != "history"}))


@train_app.command("span-thresholds")
def train_span_thresholds_cmd(
    package: Annotated[Path, typer.Argument(help="An exported model package with a span head (e.g. models/default).")],
    data_dir: DataDir = None,
) -> None:
    """Tune an exported package's two span thresholds (spans for flagged categories; spans="all") on the
    SemEval trial posts and write them into its manifest. `moderate export` does this itself; use it for a
    package exported before a span mode existed. The test posts are never read."""
    from moderation.training.data import resolve_data_dir, semeval_spans
    from moderation.training.spans import tune_package_span_thresholds

    posts = semeval_spans(resolve_data_dir(data_dir), "trial")
    typer.echo(json.dumps(tune_package_span_thresholds(package, posts, log=say)))


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
    from moderation.training.data import held_back_ids
    from moderation.training.improve import ImproveConfig, rl_from_store
    from moderation.training.rl import RLConfig

    tax = load_taxonomy_option(taxonomy)
    examples = dataset_examples(data_dir, tax)
    texts = [e.text for e in examples if e.split == "train"] if pool is None else [r.text for r in read_rows(pool)]
    cfg = ImproveConfig(holdout=holdout, seed=seed, rl=RLConfig(steps=steps, group_size=group_size, kl_beta=kl_beta, lr=lr))
    hist = rl_from_store(store, policy, reward, out, texts, pool_size, tax, cfg, held_back=held_back_ids(examples), log=say)
    typer.echo(json.dumps({"best_step": hist.best_step, "stopped_for_reward_hacking": hist.stopped_for_reward_hacking,
                           "final": hist.rows[-1], "out": str(out)}))



class EvalSplit(str, Enum):
    test = "test"
    validation = "validation"


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
    tax = load_taxonomy_option(taxonomy) if taxonomy or own is None else own
    examples = dataset_examples(data_dir, tax)
    validation, target = [e for e in examples if e.split == "validation"], [e for e in examples if e.split == split.value]
    typer.echo(evaluate_model(score, str(model), validation, target, split.value, tax, out, log=say))



class Quantization(str, Enum):
    int8 = "int8"
    int8_weights = "int8-weights"
    int8_dynamic = "int8-dynamic"
    none = "none"


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
    tax = load_taxonomy_option(taxonomy)
    examples = dataset_examples(data_dir, tax)
    span_validation = None
    if json.loads((checkpoint / "policy_config.json").read_text()).get("span_categories"):
        from moderation.training.data import resolve_data_dir, semeval_spans

        span_validation = semeval_spans(resolve_data_dir(data_dir), "trial")
    manifest = export_package(checkpoint, out, tax, [e for e in examples if e.split == "validation"],
                              [e for e in examples if e.split == "test"], cfg, span_validation=span_validation)
    typer.echo(json.dumps({"package": str(out), "version": manifest["version"], "parity": manifest["parity"],
                           "test_macro_auprc": manifest["test_macro_auprc"]}))
