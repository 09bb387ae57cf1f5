"""Step 2's output: the feedback store. Reviewer judgments as tool-agnostic records.

Two kinds of judgment feed the reward model:
  correction   a reviewer's gold label set for a text
  preference   "label set A is better than B for this text", from a ranking of K proposals (K(K-1)/2
               pairs) and from a correction (preferred to every proposal that differs from it)
Skipped and cancelled reviews are kept as `skipped` records, so throughput and coverage are honest.

A judgment records which categories the reviewer actually judged (`judged`; None means all of them).
A category a reviewer could not judge (they marked it "cannot judge", or a simulated reviewer's source
annotator never labelled it) is masked everywhere downstream: it makes no preference pair, no training
target and no part of a utility. Nothing fills it in, least of all the model's own proposal.

The store is a folder with one JSONL file. Every record carries the key of the judgment it came from
(`<tool>:<annotation id>`); adding a judgment whose key is already stored changes nothing, so pulling
the same annotations twice is harmless. Writes go to a temp file, are fsynced, then renamed over the
old file: a crash leaves the old store or the new one, never half of one.
Nothing here knows about Label Studio (labeling/annotations.py converts its exports into these records).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from moderation.package import atomic_write_text


@dataclass
class Judgment:
    """One reviewer's submitted review of one item."""

    key: str  # unique per judgment, e.g. "labelstudio:1234" (the annotation id)
    item_id: str
    text: str
    reviewer: str
    model_version: str
    status: str = "done"  # "done" | "skipped" | "cancelled"
    gold: tuple[int, ...] | None = None  # corrected label set in taxonomy order
    ranking: list[tuple[int, ...]] = field(default_factory=list)  # proposals, best first
    proposals: list[tuple[int, ...]] = field(default_factory=list)  # what the model proposed
    seconds: float | None = None  # time the reviewer spent
    created_at: str = ""
    note: str = ""
    judged: tuple[int, ...] | None = None  # 1 where the reviewer judged the category; None: every category
    # The reviewer's evidence spans as submitted, (start, end, category) in `text`; None: the task showed none
    spans: list[tuple[int, int, str]] | None = None

    def judged_mask(self, n_categories: int) -> tuple[int, ...]:
        return self.judged if self.judged is not None else (1,) * n_categories


@dataclass(frozen=True)
class PreferencePair:
    key: str  # the judgment it came from
    item_id: str
    text: str
    chosen: tuple[int, ...]
    rejected: tuple[int, ...]
    reviewer: str
    origin: str  # "ranking" | "correction"
    judged: tuple[int, ...] | None = None  # the categories the preference speaks to (None: all)


def preference_pairs(j: Judgment) -> list[PreferencePair]:
    """A ranking of K proposals gives K(K-1)/2 pairs; a correction beats every differing proposal.

    Two label sets that differ only in categories the reviewer did not judge make no pair: the reviewer
    said nothing about which is better."""
    if j.status != "done":
        return []

    def seen(labels: tuple[int, ...]) -> tuple[int, ...]:
        return labels if j.judged is None else tuple(v * k for v, k in zip(labels, j.judged))

    pairs: dict[tuple[tuple[int, ...], tuple[int, ...]], str] = {}
    for better, worse in itertools.combinations(j.ranking, 2):
        if seen(better) != seen(worse):
            pairs[(better, worse)] = "ranking"
    if j.gold is not None:
        for p in j.proposals or j.ranking:
            if seen(p) != seen(j.gold):
                pairs[(j.gold, p)] = "correction"
    return [PreferencePair(j.key, j.item_id, j.text, a, b, j.reviewer, origin, j.judged) for (a, b), origin in pairs.items()]


class FeedbackStore:
    FILE = "judgments.jsonl"

    def __init__(self, root: str | Path, categories: list[str]):
        self.root = Path(root)
        self.categories = list(categories)
        self.path = self.root / self.FILE
        self._judgments: dict[str, Judgment] = {}
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{self.path}: line {n}: not valid JSON ({e.msg}); the store is damaged") from None
            if n == 1 and raw.get("_header"):
                if raw.get("categories") != self.categories:
                    raise ValueError(f"{self.path}: stored for categories {raw.get('categories')}, not {self.categories}")
                continue
            j = Judgment(**{**raw, "gold": tuple(raw["gold"]) if raw.get("gold") is not None else None,
                            "ranking": [tuple(r) for r in raw.get("ranking", [])],
                            "proposals": [tuple(p) for p in raw.get("proposals", [])],
                            "judged": tuple(raw["judged"]) if raw.get("judged") is not None else None,
                            "spans": [tuple(x) for x in raw["spans"]] if raw.get("spans") is not None else None})
            self._judgments[j.key] = j

    def __len__(self) -> int:
        return len(self._judgments)

    def __contains__(self, key: str) -> bool:
        return key in self._judgments

    def judgments(self) -> list[Judgment]:
        return list(self._judgments.values())

    def add(self, judgments: Iterable[Judgment], replace: bool = False) -> int:
        """Add new judgments and persist atomically. Returns how many were new or changed.

        Known keys are ignored, unless `replace` (an edited annotation replaces its earlier version)."""
        new = 0
        for j in judgments:
            for labels in ([j.gold] if j.gold is not None else []) + j.ranking + j.proposals:
                if len(labels) != len(self.categories) or any(v not in (0, 1) for v in labels):
                    raise ValueError(f"judgment {j.key}: label set {labels} does not fit the {len(self.categories)} categories")
            if j.judged is not None and (len(j.judged) != len(self.categories) or any(v not in (0, 1) for v in j.judged)):
                raise ValueError(f"judgment {j.key}: judged mask {j.judged} does not fit the {len(self.categories)} categories")
            if j.key not in self._judgments or (replace and self._judgments[j.key] != j):
                self._judgments[j.key] = j
                new += 1
        if new:
            self.save()
        return new

    def save(self) -> None:
        header = json.dumps({"_header": True, "categories": self.categories})
        body = "\n".join(json.dumps(asdict(j), ensure_ascii=False) for j in self._judgments.values())
        atomic_write_text(self.path, header + "\n" + body + ("\n" if body else ""))

    def corrections(self) -> list[Judgment]:
        return [j for j in self._judgments.values() if j.status == "done" and j.gold is not None]

    def pairs(self) -> list[PreferencePair]:
        return [p for j in self._judgments.values() for p in preference_pairs(j)]

    def stats(self) -> dict:
        from collections import Counter

        status = Counter(j.status for j in self._judgments.values())
        return {"judgments": len(self), **{f"status_{k}": v for k, v in status.items()},
                "corrections": len(self.corrections()), "preference_pairs": len(self.pairs()),
                "reviewers": len({j.reviewer for j in self._judgments.values()})}
