"""What every `moderate` command shares: exit codes, the error-mapping `App`, option types, small loaders.

Heavy imports (torch, transformers) happen inside the commands that need them, so `moderate scan`
starts fast and runs without torch installed.
"""

from __future__ import annotations

import functools
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




def new_app(help: str) -> App:
    return App(help=help, no_args_is_help=True, pretty_exceptions_show_locals=False)


def say(message: str) -> None:
    typer.echo(message, err=True)


DataDir = Annotated[Optional[Path], typer.Option(help="Folder holding the datasets (default: ../shared/datasets or $MODERATION_DATA_DIR).")]
TaxonomyPath = Annotated[Optional[Path], typer.Option(help="Your own taxonomy TOML (default: the shipped one).")]
Seed = Annotated[int, typer.Option(help="Random seed: splits stay fixed; sampling and initialisation follow it.")]
ModelPath = Annotated[Optional[Path], typer.Option("--model", help="Model package folder (default: the shipped model, or $MODERATION_MODEL).")]

LSDir = Annotated[Optional[Path], typer.Option("--ls-dir", help="Label Studio data folder (default data/labelstudio or $MODERATION_LABELSTUDIO_DIR).")]
Project = Annotated[str, typer.Option(help="Label Studio project title.")]
StoreDir = Annotated[Path, typer.Option(help="Feedback store folder.")]
LSUrl = Annotated[Optional[str], typer.Option("--url", help="Label Studio URL (default $LABEL_STUDIO_URL or the server we started).")]
RegistryDir = Annotated[Optional[Path], typer.Option("--registry", help="Registry folder (default data/registry or $MODERATION_REGISTRY).")]


def load_taxonomy_option(path: Optional[Path]):
    from moderation.taxonomy import load_taxonomy

    return load_taxonomy(path)


def dataset_examples(data_dir: Optional[Path], taxonomy, split: Optional[str] = None):
    """The datasets with their fixed splits: `--seed` never moves the test split."""
    from moderation.training.data import load_examples

    examples = load_examples(data_dir, taxonomy=taxonomy, seed=0)
    return examples if split is None else [e for e in examples if e.split == split]


def read_rows(input: str, text_field: str = "text", id_field: Optional[str] = "id"):
    from moderation.scan import detect_format, read_items

    return [r for r in read_items(input, detect_format(input, None), text_field, id_field) if hasattr(r, "text")]


def print_renderables(*renderables) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    for r in renderables:
        console.print(r)


def review_client(ls_dir: Optional[Path], url: Optional[str]):
    from labeling.client import connect
    from labeling.server import data_dir, load_credentials, status

    running = status(ls_dir)
    creds = load_credentials(data_dir(ls_dir), url or (running.get("url") if running.get("running") else None))
    return connect(creds), creds


def open_registry(root: Optional[Path]):
    from moderation.training.registry import Registry

    return Registry(root)


class Strategy(str, Enum):
    uncertainty = "uncertainty"
    disagreement = "disagreement"
    random = "random"
    audit = "audit"
