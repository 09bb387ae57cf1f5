"""Simulated reviewers, built from the multi-annotator datasets, acting through the real Label Studio API.

Each simulated reviewer is its own Label Studio user. On a task whose item comes from a dataset with
per-annotator labels (Davidson vote counts, ConvAbuse annotators, Toxic Spans raters), the reviewer:
  1. takes one real annotator's labels for that item (sampled, different reviewers tend to draw different
     annotators, so their disagreement is the datasets' real disagreement);
  2. judges only the categories that annotator judged, and marks every other category "cannot judge":
     a simulated reviewer may only say what a real annotator said, so nothing is filled in — not from
     other annotators, and never from the model's proposals;
  3. flips each judged category with probability `noise` (slips);
  4. ranks the task's proposals from their own labels by a rule of their own (`RANK_RULES`; not the
     reward model's utility), over the judged categories only, ties broken at random, and with
     probability `noise` swaps a neighbouring pair;
  5. submits through `annotations.create(..., completed_by=<their user id>)` with a plausible lead time.
Tests and benchmarks exercise exactly the path a human reviewer's annotation takes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from labeling.client import call, list_tasks
from labeling.config import CATEGORIES, RANK, TEXT, UNSURE
from moderation.feedback import Judgment
from moderation.taxonomy import Taxonomy
from moderation.training.data import SOURCE_TABLE, Example


@dataclass
class SimReviewer:
    index: int
    user_id: int
    email: str


def _rng(*parts) -> np.random.Generator:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def ensure_reviewers(client, url: str, n: int) -> list[SimReviewer]:
    """Label Studio users sim-reviewer-1..n (created once, reused after)."""
    existing = {u.email: u for u in call(lambda: list(client.users.list()), url, "listing users")}
    out = []
    for i in range(1, n + 1):
        email = f"sim-reviewer-{i}@moderation.local"
        user = existing.get(email)
        if user is None:
            user = call(lambda: client.users.create(username=f"sim-reviewer-{i}", email=email, first_name="Simulated",
                                                    last_name=f"Reviewer {i}"), url, "creating a simulated reviewer")
        out.append(SimReviewer(i, user.id, email))
    return out


def reviewer_labels(example: Example, categories: list[str], reviewer: int, noise: float,
                    seed: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(labels, judged): one real annotator's labels for the categories they judged, each flipped with
    probability `noise`; categories they did not judge are 0 in `labels` and 0 in `judged`."""
    rng = _rng(seed, reviewer, example.id, "gold")
    annotator = example.annotators[rng.integers(len(example.annotators))][1] if example.annotators else {}
    labels, judged = [], []
    for c in categories:
        if c in annotator:
            v = int(annotator[c])
            labels.append(1 - v if rng.random() < noise else v)
            judged.append(1)
        else:
            labels.append(0)
            judged.append(0)
    return tuple(labels), tuple(judged)


def _agreement(proposal: np.ndarray, labels: np.ndarray, judged: np.ndarray) -> tuple:
    """Fewest disagreements with the reviewer's labels on the judged categories."""
    return (int((judged * (proposal != labels)).sum()),)


def _misses_first(proposal: np.ndarray, labels: np.ndarray, judged: np.ndarray) -> tuple:
    """Fewest harms missed first, then fewest false alarms (a reviewer who fears misses more)."""
    return int((judged * (labels > proposal)).sum()), int((judged * (proposal > labels)).sum())


# How a simulated reviewer orders proposals from their own labels. Two rules, so that results can be
# checked not to hinge on one; neither is the reward model's built-in (cost-weighted) utility.
RANK_RULES = {"agreement": _agreement, "misses_first": _misses_first}


def rank_proposals(proposals: list[tuple[int, ...]], labels: tuple[int, ...], judged: tuple[int, ...], rule: str,
                   noise: float, rng: np.random.Generator) -> list[int]:
    """Indices of proposals, best first, by `rule` on the judged categories (ties at random, occasional slips)."""
    if rule not in RANK_RULES:
        raise ValueError(f"unknown ranking rule {rule!r}; choose one of {', '.join(RANK_RULES)}")
    y, m = np.asarray(labels), np.asarray(judged)
    key = [RANK_RULES[rule](np.asarray(p), y, m) for p in proposals]
    order = sorted(range(len(proposals)), key=lambda i: (key[i], rng.random()))
    for i in range(len(order) - 1):
        if rng.random() < noise:
            order[i], order[i + 1] = order[i + 1], order[i]
    return order


def review(example: Example, proposals: list[tuple[int, ...]], taxonomy: Taxonomy, reviewer: int, noise: float,
           seed: int, rule: str = "agreement") -> tuple[tuple[int, ...], tuple[int, ...], list[int]]:
    """One simulated reviewer's labels, judged mask and ranking (proposal indices, best first)."""
    labels, judged = reviewer_labels(example, taxonomy.names, reviewer, noise, seed)
    return labels, judged, rank_proposals(proposals, labels, judged, rule, noise, _rng(seed, reviewer, example.id, "rank"))


def offline_judgments(examples: list[Example], proposals: list[list[tuple[int, ...]]], taxonomy: Taxonomy,
                      reviewers: int = 3, noise: float = 0.05, seed: int = 0, model_version: str = "",
                      rule: str = "agreement") -> list[Judgment]:
    """The same simulated reviewers without Label Studio in between (benchmarks run thousands of these;
    `simulate` below is the path through the real server)."""
    out = []
    for ex, props in zip(examples, proposals):
        reviewer = int(_rng(seed, ex.id, "team").integers(reviewers)) + 1
        gold, judged, order = review(ex, props, taxonomy, reviewer, noise, seed, rule)
        out.append(Judgment(key=f"offline:{seed}:{ex.id}", item_id=ex.id, text=ex.text, reviewer=f"sim-reviewer-{reviewer}",
                            model_version=model_version, gold=gold, ranking=[props[i] for i in order], proposals=list(props),
                            judged=None if all(judged) else judged))
    return out


def simulate(client, url: str, project_id: int, examples: dict[str, Example], taxonomy: Taxonomy, reviewers: int = 3,
             per_item: int = 1, noise: float = 0.05, limit: int | None = None, seed: int = 0, progress: bool = True,
             known_sources: dict[str, str] | None = None, rule: str = "agreement") -> dict:
    """Annotate the project's unfinished tasks as simulated reviewers. Returns counts, and for each task
    left open the reason (`known_sources`, item id -> dataset, tells a dataset item without per-annotator
    labels from an item of your own)."""
    from collections import Counter

    from tqdm import tqdm

    if per_item > reviewers:
        raise ValueError(f"per_item ({per_item}) cannot exceed reviewers ({reviewers})")
    if rule not in RANK_RULES:
        raise ValueError(f"unknown ranking rule {rule!r}; choose one of {', '.join(RANK_RULES)}")
    team = ensure_reviewers(client, url, reviewers)
    tasks = list_tasks(client, url, project_id)
    todo = [t for t in tasks if (t.total_annotations or 0) + (t.cancelled_annotations or 0) < per_item]
    if limit is not None:
        todo = todo[:limit]
    names = taxonomy.names
    made = 0
    reasons: Counter = Counter()
    for t in tqdm(todo, desc="simulated reviews", unit="task", disable=not progress):
        data = t.data or {}
        ex = examples.get(str(data.get("item_id")))
        if ex is None:  # a simulated reviewer can only say what a real annotator said about this item
            source = (known_sources or {}).get(str(data.get("item_id")))
            reasons[f"from {source}, which keeps no per-annotator labels" if source else
                    "not a dataset item (your own data): no annotator's labels to replay"] += 1
            continue
        proposals = [tuple(p) for p in data.get("proposal_labels", [])]
        ids = [p["id"] for p in data.get("proposals", [])]
        rng = _rng(seed, t.id, "team")
        chosen = rng.choice(len(team), size=per_item - (t.total_annotations or 0), replace=False)
        for r in chosen:
            reviewer = team[int(r)]
            gold, judged, order = review(ex, proposals, taxonomy, reviewer.index, noise, seed, rule)
            result = [{"from_name": CATEGORIES, "to_name": TEXT, "type": "choices",
                       "value": {"choices": [c for c, y in zip(names, gold) if y]}},
                      {"from_name": RANK, "to_name": "proposals", "type": "ranker",
                       "value": {"ranker": {RANK: [ids[i] for i in order]}}}]
            if not all(judged):
                result.append({"from_name": UNSURE, "to_name": TEXT, "type": "choices",
                               "value": {"choices": [c for c, k in zip(names, judged) if not k]}})
            lead = float(np.clip(_rng(seed, reviewer.index, ex.id, "time").lognormal(np.log(25), 0.5), 4, 300))
            call(lambda: client.annotations.create(id=t.id, result=result, completed_by=reviewer.user_id, lead_time=lead),
                 url, "creating a simulated annotation")
            made += 1
    return {"tasks": len(todo), "annotations": made, "not_simulatable": sum(reasons.values()),
            "not_simulatable_reasons": dict(reasons), "reviewers": reviewers}


def with_adjudicated_annotator(example: Example) -> Example:
    """`example` with its source's published (adjudicated) label as its one annotator, for sources that do
    not release per-annotator labels (OLID, the YouTube spam collection, ...). Only the categories the
    source's annotators judged are kept (`SourceRule.labels`), never the categories our loader fills in on
    domain grounds (`assumed_negative`, `negative_if_clean`): a simulated reviewer still says only what real
    annotators said, but without their disagreement. Examples with per-annotator labels are returned as
    they are."""
    if example.annotators:
        return example
    judged = {c: int(float(example.labels[c]) >= 0.5) for c in SOURCE_TABLE[example.source].labels
              if example.labels.get(c) is not None}
    return replace(example, annotators=[("adjudicated", judged)] if judged else [])


def simulatable_examples(examples: list[Example]) -> dict[str, Example]:
    """Items whose source keeps per-annotator labels."""
    return {e.id: e for e in examples if e.annotators}
