"""`moderate registry`: model versions, their metrics, promotion through the gate, rollback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from commands.common import DataDir, ExitCode, RegistryDir, dataset_examples, fail, load_taxonomy_option, new_app, open_registry, say

registry_app = new_app("Model versions, their metrics, promotion through the gate, rollback.")


@registry_app.command("list")
def registry_list(registry: RegistryDir = None,
                  as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Every version with its test metrics, status and gate decision; production marked."""
    from dataclasses import asdict

    from rich.console import Console

    from moderation.training.registry import listing

    reg = open_registry(registry)
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

    reg = open_registry(registry)
    v = add_package(reg, package, checkpoint, version, lambda tax: dataset_examples(data_dir, tax, "test"), log=say)
    typer.echo(f"registered {v.version}: macro AUPRC {v.metrics['macro_auprc']:.4f}, utility {v.metrics['utility_cost_optimal']:.4f}")
    if promote:
        _promote(reg, v.version, force=False, data_dir=data_dir)


def _promote(reg, version: str, force: bool, data_dir=None, reviewed_sources: list[str] | None = None) -> None:
    """Gate and promote: with a production version to beat, both score the gate split (loaded here)."""
    candidate, production = reg.get(version), reg.production()
    gate_items = None
    if production is not None and production.version != version:
        taxonomy = load_taxonomy_option(reg.resolve(candidate.package) / "taxonomy.toml")
        gate_items = dataset_examples(data_dir, taxonomy, "gate")
        unknown = sorted(set(reviewed_sources or ()) - {e.source for e in gate_items})
        if unknown:
            fail(f"--reviewed-source {', '.join(unknown)}: no gate-split items of that source (sources: "
                 f"{', '.join(sorted({e.source for e in gate_items}))})", ExitCode.BAD_INPUT)
        say(f"gate: {version} and production {production.version} score {len(gate_items)} gate-split texts…")
    result = reg.promote(version, force=force, gate_examples=gate_items, focus_sources=set(reviewed_sources or ()) or None)
    if result.passed:
        typer.echo(f"{version} is in production ({'; '.join(result.reasons) or 'gate passed'})")
    elif force:
        typer.secho(f"{version} promoted with --force although the gate refused it: " + "; ".join(result.reasons), fg=typer.colors.YELLOW)
    else:
        fail(f"gate refused {version}:\n  " + "\n  ".join(result.reasons), ExitCode.GATE_FAILED)


@registry_app.command("promote")
def registry_promote(version: Annotated[str, typer.Argument(help="Registered version to put in production.")],
                     force: Annotated[bool, typer.Option(help="Promote even if the gate refuses (recorded in the registry).")] = False,
                     reviewed_source: Annotated[Optional[list[str]], typer.Option(
                         help="A source the candidate's reviews came from (repeatable): the candidate must be better on "
                              "its gate items and not worse elsewhere, instead of better on the whole split.")] = None,
                     registry: RegistryDir = None, data_dir: DataDir = None) -> None:
    """Gate a version against production on the gate split and promote it (exit code 4 when the gate refuses)."""
    _promote(open_registry(registry), version, force, data_dir, reviewed_source)


@registry_app.command("rollback")
def registry_rollback(registry: RegistryDir = None) -> None:
    """Put the previous production version back."""
    reg = open_registry(registry)
    typer.echo(f"production is {reg.rollback().version} again ({reg.root / 'production'})")
