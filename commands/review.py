"""`moderate review`: step 2 of the loop, human review in Label Studio (server, queues, feedback, simulated reviewers)."""

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
    Seed,
    StoreDir,
    Strategy,
    TaxonomyPath,
    dataset_examples,
    fail,
    load_taxonomy_option,
    new_app,
    read_rows,
    review_client,
    say,
)

class RankRule(str, Enum):
    agreement = "agreement"
    misses_first = "misses_first"


review_app = new_app("Step 2: human review in Label Studio (server, queues, feedback, simulated reviewers).")


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



class PushSplit(str, Enum):
    train = "train"
    validation = "validation"  # never test (it only reports) nor gate (it decides promotions): reviewers never see them


@review_app.command("push")
def review_push(
    input: Annotated[Optional[str], typer.Argument(help="Items to choose from (any `scan` input format); omit to draw from the datasets' --split.")] = None,
    n: Annotated[int, typer.Option(min=1, help="How many items to push.")] = 100,
    strategy: Annotated[Strategy, typer.Option(help="uncertainty, disagreement, random or audit.")] = Strategy.uncertainty,
    k: Annotated[int, typer.Option(min=2, max=8, help="Label-set proposals per item (the most likely first, then sampled ones).")] = 4,
    split: Annotated[PushSplit, typer.Option(help="Dataset split to draw from when no INPUT is given (test and gate are refused: they report and decide promotions).")] = PushSplit.train,
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
    client, creds = review_client(ls_dir, url)  # before the scoring: a server that is down fails in a second
    if input is None:
        rows = [e for e in dataset_examples(data_dir, mod.taxonomy, split.value) if e.annotators or not only_simulatable]
        ids, texts, sources = [e.id for e in rows], [e.text for e in rows], [e.source for e in rows]
    else:
        rows = read_rows(input, text_field, id_field)
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

    tax = load_taxonomy_option(taxonomy)
    client, creds = review_client(ls_dir, url)
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
                    rank_rule: Annotated[RankRule, typer.Option(help="How a reviewer orders the proposals from their own labels: agreement (fewest disagreements) or misses-first (fewest missed harms, then fewest false alarms).")] = RankRule.agreement,
                    limit: Annotated[Optional[int], typer.Option(help="Annotate at most this many tasks.")] = None,
                    taxonomy: TaxonomyPath = None, ls_dir: LSDir = None, url: LSUrl = None, data_dir: DataDir = None,
                    seed: Seed = 0) -> None:
    """Review open tasks as simulated reviewers drawn from the multi-annotator datasets, through the real API.

    A task can be simulated only when its item comes from a dataset that kept each annotator's labels;
    the others stay open for people, and the output says why each was left.
    """
    from labeling.queue import ensure_project
    from labeling.simulate import simulatable_examples, simulate

    tax = load_taxonomy_option(taxonomy)
    examples = dataset_examples(data_dir, tax)
    client, creds = review_client(ls_dir, url)
    proj = ensure_project(client, creds.url, project, tax)
    try:
        result = simulate(client, creds.url, proj.id, simulatable_examples(examples), tax, reviewers=reviewers, per_item=per_item,
                          noise=noise, limit=limit, seed=seed, known_sources={e.id: e.source for e in examples},
                          rule=rank_rule.value)
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

    tax = load_taxonomy_option(taxonomy)
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
