"""What a supervised run trains and selects on: real sources (minus any held out), benign-context copies,
and the hand-written templates. One function, used by `moderate train sft` and the benchmarks, so the
shipped model and the held-out-source model are built the same way.

Held-out sources leave *every* split here: their validation items would otherwise choose the epoch and
the calibration, and the out-of-domain numbers would not be out of domain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from moderation.errors import ConfigError
from moderation.training.augment import with_benign_context
from moderation.training.data import LOADERS, Example
from moderation.training.templates import training_templates


@dataclass(frozen=True)
class TrainingSetConfig:
    exclude_sources: tuple[str, ...] = ()
    context_fraction: float = 0.2  # share of short training examples copied with benign context around them
    templates_per_family: int = 300  # 0 = no templates
    seed: int = 0

    def __post_init__(self):
        unknown = [s for s in self.exclude_sources if s not in LOADERS]
        if unknown:
            raise ConfigError(f"unknown source(s) to exclude: {unknown}; known: {sorted(LOADERS)}")
        if not 0.0 <= self.context_fraction <= 1.0:
            raise ConfigError(f"context_fraction must be in [0, 1], got {self.context_fraction}")
        if self.templates_per_family < 0:
            raise ConfigError("templates_per_family must be >= 0")


def build_training_set(examples: list[Example], cfg: TrainingSetConfig) -> tuple[list[Example], list[Example]]:
    """(train, validation). Test items are never returned."""
    kept = [e for e in examples if e.source not in cfg.exclude_sources]
    train = [e for e in kept if e.split == "train"]
    validation = [e for e in kept if e.split == "validation"]
    extra = with_benign_context(train, cfg.context_fraction, seed=cfg.seed) if cfg.context_fraction else []
    templates = training_templates(cfg.templates_per_family, seed=cfg.seed) if cfg.templates_per_family else []
    return train + extra + templates, validation


def fingerprint(examples: list[Example]) -> str:
    """A short hash of the examples' texts, labels and sources, in order. Two runs with equal fingerprints (and
    equal SFT configs) trained on the same items in the same order, so any difference between them is numerical
    (machine, kernels, threads), not data: on 2026-12-02 this told 0.5.1's run apart from its retrains."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(json.dumps([e.source, e.text, e.labels], sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]
