"""Review queues: choose which items reviewers see, and push them to Label Studio with K proposals.

Strategies (all see only model scores, never gold labels):
  uncertainty   closest to a review threshold in logit space (the model is least sure what to do)
  disagreement  the K proposals differ most (mean pairwise Hamming distance): the policy's own doubt
  random        a uniform sample: unbiased estimates of error rates
  audit         a sample of *confident* decisions (every category far from its thresholds), to measure
                the precision of what the model would auto-allow or auto-block

Pushing is idempotent: a task carries its `item_id`, and items already in the project are skipped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import numpy as np

from labeling.client import call, list_tasks
from labeling.config import (
    CATEGORIES,
    EVIDENCE,
    PROPOSALS,
    TEXT,
    instructions_html,
    labeling_config,
    proposal_body,
    proposal_id,
    proposal_title,
)
from moderation.proposals import proposals_from_logits
from moderation.taxonomy import Taxonomy

STRATEGIES = ("uncertainty", "disagreement", "random", "audit")


@dataclass
class QueueItem:
    item_id: str
    text: str
    scores: np.ndarray  # calibrated probabilities, taxonomy order
    source: str = ""
    spans: list = field(default_factory=list)  # moderation.spans.Span, offsets into `text`


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def select(items: list[QueueItem], n: int, strategy: str, review_thresholds: np.ndarray, k: int = 4,
           seed: int = 0) -> list[QueueItem]:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if not items:
        return []
    rng = np.random.default_rng(seed)
    probs = np.stack([it.scores for it in items])
    margin = np.abs(_logit(probs) - _logit(review_thresholds)).min(1)  # distance to the nearest decision boundary
    if strategy == "uncertainty":
        order = np.argsort(margin, kind="stable")
    elif strategy == "disagreement":
        spread = []
        for props in proposals_from_logits(_logit(probs), k, seed=seed):
            sets = np.array([p.labels for p in props])
            spread.append(np.abs(sets[:, None, :] - sets[None, :, :]).sum(-1).mean())
        order = np.argsort(-np.asarray(spread) + 1e-9 * margin, kind="stable")
    elif strategy == "random":
        order = rng.permutation(len(items))
    else:  # audit: confident items only, sampled uniformly
        confident = np.nonzero(margin >= np.quantile(margin, 0.5))[0]
        order = rng.permutation(confident)
    return [items[i] for i in order[:n]]


_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")  # html.unescape's own pattern


def unescape_with_offsets(text: str) -> tuple[str, np.ndarray, np.ndarray]:
    """html.unescape(text), and for each character of it the [start, end) range of `text` it came from."""
    out, starts, ends, last = [], [], [], 0
    for m in _CHARREF.finditer(text):
        out.append(text[last : m.start()])
        starts += range(last, m.start())
        ends += range(last + 1, m.start() + 1)
        piece = html.unescape(m.group(0))
        out.append(piece)
        starts += [m.start()] * len(piece)
        ends += [m.end()] * len(piece)
        last = m.end()
    out.append(text[last:])
    starts += range(last, len(text))
    ends += range(last + 1, len(text) + 1)
    return "".join(out), np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def span_regions(spans, text: str, escaped: bool = True) -> list[dict]:
    """Label Studio regions for `spans` (offsets into `text`), placed in the unescaped text the reviewer sees
    (escaped=False: `text` is already what the reviewer sees, as in the ML backend)."""
    if escaped:
        shown, starts, ends = unescape_with_offsets(text)
    else:
        shown, starts = text, np.arange(len(text), dtype=np.int64)
        ends = starts + 1
    regions = []
    for i, s in enumerate(spans):
        a = int(np.searchsorted(starts, s.start, side="left"))
        b = int(np.searchsorted(ends, s.end, side="right"))
        if b > a:
            regions.append({"id": f"span-{i + 1}", "from_name": EVIDENCE, "to_name": TEXT, "type": "labels",
                            "score": s.score, "value": {"start": a, "end": b, "text": shown[a:b], "labels": [s.category]}})
    return regions


def task_payload(item: QueueItem, taxonomy: Taxonomy, model_version: str, k: int, thresholds: np.ndarray,
                 seed: int = 0) -> dict:
    """One Label Studio task: the text, K proposals most likely first, scores; the most likely pre-fills the choices.

    The first proposal is the mode of the model's distribution (every category at p >= 0.5), so the
    pre-ticked set is never less likely than a card below it. `thresholds` (the review thresholds) are
    recorded with the scores; they decide flagging, not what the reviewer is shown as the best guess.
    Texts from the web often carry HTML entities (`&#8220;`): the reviewer sees them unescaped, and the
    original (what the model scored) stays in `original_text` and is what the judgment records."""
    props = proposals_from_logits(_logit(item.scores[None, :]), k, seed=seed)[0]
    props = sorted(props, key=lambda p: -p.log_prob)
    names = taxonomy.names
    shown = html.unescape(item.text)
    data = {
        TEXT: shown,
        "item_id": item.item_id,
        "source": item.source,
        "model_version": model_version,
        "scores": {c: round(float(s), 4) for c, s in zip(names, item.scores)},
        "review_thresholds": {c: round(float(t), 4) for c, t in zip(names, thresholds)},
        PROPOSALS: [{"id": proposal_id(i), "title": proposal_title(i, p.labels, names), "body": proposal_body(float(np.exp(p.log_prob)))}
                    for i, p in enumerate(props)],
        "proposal_labels": [list(p.labels) for p in props],
        "proposal_log_probs": [round(p.log_prob, 4) for p in props],
    }
    if shown != item.text:
        data["original_text"] = item.text
    if item.spans:
        data["model_spans"] = [s.to_dict() for s in item.spans]  # offsets into the original text
    return {"data": data, "predictions": [prediction(props[0].labels, item.scores, names, model_version,
                                                     span_regions(item.spans, item.text))]}


def prediction(labels: tuple[int, ...], scores: np.ndarray, names: list[str], model_version: str,
               regions: list[dict] = ()) -> dict:
    """A Label Studio prediction pre-filling the categories with `labels` and highlighting `regions`
    (span_regions) in the text (used by push and the ML backend)."""
    result = [{"from_name": CATEGORIES, "to_name": TEXT, "type": "choices",
               "value": {"choices": [c for c, y in zip(names, labels) if y]}}] if any(labels) else []
    return {"model_version": model_version, "score": float(np.max(scores)) if len(scores) else 0.0,
            "result": result + list(regions)}


def ensure_project(client, url: str, title: str, taxonomy: Taxonomy):
    """Find the project by title, or create it with the config generated from the taxonomy."""
    config, instructions = labeling_config(taxonomy), instructions_html(taxonomy)
    for p in call(lambda: list(client.projects.list()), url, "listing projects"):
        if p.title == title:
            if (p.label_config or "").strip() != config.strip() or (getattr(p, "expert_instruction", None) or "") != instructions:
                call(lambda: client.projects.update(id=p.id, label_config=config, expert_instruction=instructions,
                                                    show_instruction=True), url, "updating the labeling config")
            return p
    return call(lambda: client.projects.create(title=title, label_config=config, show_skip_button=True,
                                               description="Moderation review: correct the labels, rank the proposals.",
                                               expert_instruction=instructions_html(taxonomy), show_instruction=True),
                url, "creating the project")


def existing_item_ids(client, url: str, project_id: int) -> set[str]:
    return {str((t.data or {}).get("item_id")) for t in list_tasks(client, url, project_id)}


def fresh_items(items: list[QueueItem], present: set[str]) -> list[QueueItem]:
    """The items whose id the project does not hold yet, each id once (pushing is idempotent)."""
    seen, fresh = set(present), []
    for it in items:
        if it.item_id not in seen:
            seen.add(it.item_id)
            fresh.append(it)
    return fresh


def push(client, url: str, project_id: int, items: list[QueueItem], taxonomy: Taxonomy, model_version: str,
         review_thresholds: np.ndarray, k: int = 4, seed: int = 0, chunk: int = 500) -> dict:
    """Import tasks with predictions; items whose item_id is already in the project are skipped."""
    fresh = fresh_items(items, existing_item_ids(client, url, project_id))
    created = 0
    for i in range(0, len(fresh), chunk):
        payload = [task_payload(it, taxonomy, model_version, k, review_thresholds, seed) for it in fresh[i : i + chunk]]
        call(lambda: client.projects.import_tasks(id=project_id, request=payload, return_task_ids=True), url, "importing tasks")
        created += len(payload)
    return {"requested": len(items), "created": created, "already_present": len(items) - created}


def choose_for_review(score, review_thresholds: np.ndarray, ids: list[str], texts: list[str], sources: list[str], n: int,
                      strategy: str, k: int = 4, pool: int = 5000, seed: int = 0, log=lambda message: None) -> tuple[list[QueueItem], int]:
    """Draw a random pool of at most `pool` candidates (0: all), score them with `score` (texts ->
    probabilities) under a progress bar, and choose `n` by `strategy`. Returns (chosen, how many were scored)."""
    import sys

    from tqdm import tqdm

    if pool and len(texts) > pool:
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), pool, replace=False))
        log(f"drawing a random pool of {pool} of the {len(texts)} candidates (--pool 0 scores them all)")
        ids, texts, sources = [ids[i] for i in keep], [texts[i] for i in keep], [sources[i] for i in keep]
    scores = []
    with tqdm(total=len(texts), desc="scoring candidates", unit=" texts", file=sys.stderr, dynamic_ncols=True) as bar:
        for start in range(0, len(texts), 256):
            scores.extend(score(texts[start : start + 256]))
            bar.update(len(texts[start : start + 256]))
    items = [QueueItem(i, t, s, src) for i, t, s, src in zip(ids, texts, scores, sources)]
    return select(items, n, strategy, review_thresholds, k=k, seed=seed), len(texts)


def push_for_review(client, url: str, project_title: str, moderator, ids: list[str], texts: list[str], sources: list[str],
                    n: int, strategy: str, k: int = 4, pool: int = 5000, seed: int = 0, log=lambda message: None) -> dict:
    """`moderate review push`: choose (above) and push to the project (created if needed)."""
    chosen, scored = choose_for_review(moderator.score, moderator.review_thresholds, ids, texts, sources, n, strategy, k, pool,
                                       seed, log)
    if chosen and getattr(moderator, "has_token_probs", False):  # highlight the evidence (packages before 0.4.1 have none to show)
        _, found = moderator.score_with_spans([it.text for it in chosen])
        for it, spans in zip(chosen, found):
            it.spans = spans
    project = ensure_project(client, url, project_title, moderator.taxonomy)
    result = push(client, url, project.id, chosen, moderator.taxonomy, moderator.version, moderator.review_thresholds, k=k, seed=seed)
    return {"project": project.id, "strategy": strategy, "scored": scored, **result}
