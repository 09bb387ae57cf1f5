"""Label Studio exports (and webhook payloads) -> feedback records, validated; reviewer agreement.

Label Studio accepts unknown control names and unknown choice values silently. We do not: every result
is checked against the taxonomy and the labeling config, and an annotation with any problem is rejected
as a whole, with a report naming the task, the annotation and the problem.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from labeling.client import call
from labeling.config import CATEGORIES, CONTROL_NAMES, EVIDENCE, NOTE, RANK, UNSURE
from moderation.feedback import Judgment
from moderation.taxonomy import Taxonomy

TOOL = "labelstudio"


@dataclass
class Rejected:
    task_id: int
    annotation_id: int
    problem: str

    def __str__(self) -> str:
        return f"task {self.task_id}, annotation {self.annotation_id}: {self.problem}"


def annotation_to_judgment(task: dict, ann: dict, taxonomy: Taxonomy) -> Judgment:
    """One exported annotation -> a Judgment. Raises ValueError naming the problem."""
    names = taxonomy.names
    data = task.get("data") or {}
    proposals_raw = data.get("proposal_labels") or []
    proposals = [tuple(int(v) for v in p) for p in proposals_raw]
    for p in proposals:
        if len(p) != len(names):
            raise ValueError(f"task proposals have {len(p)} categories, the taxonomy has {len(names)} "
                             "(the task was pushed under another taxonomy)")
    ids = [p.get("id") for p in data.get("proposals") or []]
    common = dict(key=f"{TOOL}:{ann['id']}", item_id=str(data.get("item_id", task.get("id"))), text=str(data.get("original_text", data.get("text", ""))),
                  reviewer=f"{TOOL}-user:{ann.get('completed_by')}", model_version=str(data.get("model_version", "")),
                  proposals=proposals, seconds=ann.get("lead_time"), created_at=str(ann.get("created_at", "")))
    if ann.get("was_cancelled"):
        return Judgment(status="skipped", **common)
    gold = [0] * len(names)
    judged = [1] * len(names)
    ranking: list[tuple[int, ...]] = []
    note = ""
    spans: list[tuple[int, int, str]] = []
    for r in ann.get("result") or []:
        control, kind = r.get("from_name"), r.get("type")
        if control not in CONTROL_NAMES:
            raise ValueError(f"unknown control {control!r} (the config has {sorted(CONTROL_NAMES)})")
        if CONTROL_NAMES[control] != kind:
            raise ValueError(f"control {control!r} has type {kind!r}, expected {CONTROL_NAMES[control]!r}")
        value = r.get("value") or {}
        if control == CATEGORIES:
            for choice in value.get("choices", []):
                if choice not in names:
                    raise ValueError(f"unknown category {choice!r} (the taxonomy has {names})")
                gold[names.index(choice)] = 1
        elif control == RANK:
            order = next(iter((value.get("ranker") or {}).values()), [])
            for pid in order:
                if pid not in ids:
                    raise ValueError(f"ranking names proposal {pid!r}, which the task does not have ({ids})")
            ranking = [proposals[ids.index(pid)] for pid in order]
        elif control == UNSURE:
            for choice in value.get("choices", []):
                if choice not in names:
                    raise ValueError(f"unknown category {choice!r} marked as not judged (the taxonomy has {names})")
                judged[names.index(choice)] = 0
        elif control == NOTE:
            note = " ".join(value.get("text", []))[:2000]
        elif control == EVIDENCE:
            spans.append(_evidence_span(value, data, names))
    both = [c for c, g, k in zip(names, gold, judged) if g and not k]
    if both:
        raise ValueError(f"{', '.join(both)} both ticked and marked as not judged; untick one")
    shown_spans = data.get("model_spans") is not None or bool(spans)
    return Judgment(status="done", gold=tuple(gold), ranking=ranking, note=note,
                    judged=None if all(judged) else tuple(judged), spans=sorted(spans) if shown_spans else None, **common)


def _evidence_span(value: dict, data: dict, names: list[str]) -> tuple[int, int, str]:
    """A highlighted region -> (start, end, category) in the original text (the reviewer saw it unescaped)."""
    from labeling.queue import unescape_with_offsets

    labels = value.get("labels") or []
    if len(labels) != 1 or labels[0] not in names:
        raise ValueError(f"a highlighted span must carry one category of {names}, got {labels}")
    original = str(data.get("original_text", data.get("text", "")))
    shown, starts, ends = unescape_with_offsets(original)
    a, b = value.get("start"), value.get("end")
    if not (isinstance(a, int) and isinstance(b, int) and 0 <= a < b <= len(shown)):
        raise ValueError(f"highlighted span {a}..{b} is not inside the {len(shown)}-character text")
    return int(starts[a]), int(ends[b - 1]), labels[0]


def tasks_to_judgments(tasks: list[dict], taxonomy: Taxonomy) -> tuple[list[Judgment], list[Rejected]]:
    judgments, rejected = [], []
    for task in tasks:
        for ann in task.get("annotations") or []:
            try:
                judgments.append(annotation_to_judgment(task, ann, taxonomy))
            except (ValueError, TypeError, KeyError) as e:
                rejected.append(Rejected(task.get("id", -1), ann.get("id", -1), str(e)))
    return judgments, rejected


def export_tasks(client, url: str, project_id: int, timeout: float = 300.0) -> list[dict]:
    """A full JSON export (predictions included), through Label Studio's export job."""
    export = call(lambda: client.projects.exports.create(
        id=project_id, title=f"moderation pull {time.strftime('%Y-%m-%dT%H:%M:%S')}",
        serialization_options={"predictions": {"only_id": False}}), url, "creating an export")
    deadline = time.monotonic() + timeout
    while True:
        state = call(lambda: client.projects.exports.get(id=project_id, export_pk=export.id), url, "polling the export")
        if str(state.status) in ("completed", "Status.COMPLETED"):
            break
        if str(state.status) in ("failed", "Status.FAILED"):
            raise RuntimeError(f"Label Studio export {export.id} failed")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Label Studio export {export.id} did not finish in {timeout:.0f}s")
        time.sleep(0.3)
    chunks = call(lambda: b"".join(client.projects.exports.download(id=project_id, export_pk=export.id, export_type="JSON")),
                  url, "downloading the export")
    return json.loads(chunks)


# ---------------------------------------------------------------- agreement


def krippendorff_alpha_nominal(units: list[list[int]]) -> float | None:
    """Krippendorff's alpha for nominal data; `units` holds each item's values from its reviewers.

    alpha = 1 - D_o / D_e, over items with at least two values (pairable units).
    """
    units = [u for u in units if len(u) >= 2]
    if not units:
        return None
    values = sorted({v for u in units for v in u})
    idx = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))  # coincidence matrix
    for u in units:
        counts = np.bincount([idx[v] for v in u], minlength=len(values)).astype(float)
        o += (np.outer(counts, counts) - np.diag(counts)) / (len(u) - 1)
    n_c = o.sum(1)
    n = n_c.sum()
    d_o = (o.sum() - np.trace(o)) / n
    d_e = (n * n - (n_c**2).sum()) / (n * (n - 1))
    if d_e == 0:
        return 1.0 if d_o == 0 else None
    return float(1 - d_o / d_e)


def agreement(judgments: list[Judgment], categories: list[str]) -> dict[str, float | None]:
    """Per-category alpha over items reviewed (not skipped) by two or more reviewers who judged that category."""
    by_item: dict[str, list[Judgment]] = {}
    for j in judgments:
        if j.status == "done" and j.gold is not None:
            by_item.setdefault(j.item_id, []).append(j)
    n = len(categories)
    return {c: krippendorff_alpha_nominal([[j.gold[ci] for j in js if j.judged_mask(n)[ci]] for js in by_item.values()])
            for ci, c in enumerate(categories)}


def throughput(judgments: list[Judgment]) -> dict:
    done = [j for j in judgments if j.status == "done"]
    seconds = sum(j.seconds or 0.0 for j in done)
    return {"reviewed": len(done), "skipped": sum(j.status != "done" for j in judgments),
            "items": len({j.item_id for j in done}), "reviewer_hours": seconds / 3600,
            "items_per_hour": (len(done) / (seconds / 3600)) if seconds > 0 else None}


def pull_feedback(client, url: str, project_title: str, taxonomy: Taxonomy, store) -> tuple[dict, list[Rejected]]:
    """`moderate review pull`: export the project's annotations, validate each, add the new ones to `store`."""
    from labeling.queue import ensure_project

    project = ensure_project(client, url, project_title, taxonomy)
    tasks = export_tasks(client, url, project.id)
    judgments, rejected = tasks_to_judgments(tasks, taxonomy)
    new = store.add(judgments)
    return {"tasks": len(tasks), "annotations": len(judgments) + len(rejected), "new": new, "rejected": len(rejected),
            "store": str(store.root), **store.stats()}, rejected
