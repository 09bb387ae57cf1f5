"""The moderation policy as data: categories, definitions, reviewer costs and threshold targets.

The taxonomy is a TOML file (see `taxonomy.toml` beside this module). It is the single place where a
category's name, definition and costs live; the model, the review UI and the utility all read it.
This module is on the inference path: it imports only the standard library and numpy.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moderation.errors import ModerationError

DEFAULT_TAXONOMY_PATH = Path(__file__).with_name("taxonomy.toml")


class TaxonomyError(ModerationError, ValueError):
    """An invalid taxonomy file; the message names the file and the field."""


@dataclass(frozen=True)
class Category:
    name: str
    definition: str
    cost_fn: float  # cost of missing it (false negative)
    cost_fp: float  # cost of flagging it wrongly (false positive)
    review_recall: float  # recall the "review" (cost) threshold should keep on validation data; reported
    block_precision: float  # precision the "block" threshold must reach on validation data


@dataclass(frozen=True)
class Taxonomy:
    name: str
    version: str
    categories: tuple[Category, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.categories]

    def __len__(self) -> int:
        return len(self.categories)

    def index(self, name: str) -> int:
        for i, c in enumerate(self.categories):
            if c.name == name:
                return i
        raise KeyError(f"unknown category {name!r}; the taxonomy has {self.names}")

    @property
    def cost_fn(self) -> np.ndarray:
        return np.array([c.cost_fn for c in self.categories], dtype=np.float64)

    @property
    def cost_fp(self) -> np.ndarray:
        return np.array([c.cost_fp for c in self.categories], dtype=np.float64)

    def cost_optimal_thresholds(self) -> np.ndarray:
        """Flag category c when p_c > cost_fp / (cost_fp + cost_fn): with calibrated probabilities this
        maximises the expected reviewer utility of each decision (flagging costs (1-p)*cost_fp, not
        flagging costs p*cost_fn)."""
        return self.cost_fp / (self.cost_fp + self.cost_fn)

    def utility(self, predicted: np.ndarray, gold: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Reviewer utility U(y, y*) per row: minus the cost-weighted misses and false flags.

        `predicted` and `gold` are {0,1} arrays of shape (..., C); `mask` (same shape) drops categories
        whose gold label is unknown.
        """
        y = np.asarray(predicted, dtype=np.float64)
        g = np.asarray(gold, dtype=np.float64)
        m = np.ones_like(g) if mask is None else np.asarray(mask, dtype=np.float64)
        misses = self.cost_fn * (g * (1 - y))
        false_flags = self.cost_fp * ((1 - g) * y)
        return -((misses + false_flags) * m).sum(axis=-1)

    def to_toml(self) -> str:
        """Serialise back to TOML (used to copy the taxonomy into a model package)."""
        lines = [f'name = "{_escape(self.name)}"', f'version = "{_escape(self.version)}"', ""]
        for c in self.categories:
            lines += [
                "[[category]]",
                f'name = "{_escape(c.name)}"',
                f'definition = "{_escape(c.definition)}"',
                f"cost_fn = {c.cost_fn!r}",
                f"cost_fp = {c.cost_fp!r}",
                f"review_recall = {c.review_recall!r}",
                f"block_precision = {c.block_precision!r}",
                "",
            ]
        return "\n".join(lines)


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _number(where: str, value: object, low: float, high: float | None, *, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TaxonomyError(f"{where} must be a number, got {value!r}")
    v = float(value)
    too_low = v <= low if open_low else v < low
    if too_low or (high is not None and v > high):
        bound = f"{'>' if open_low else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise TaxonomyError(f"{where} must be {bound}, got {v}")
    return v


def parse_taxonomy(data: dict, source: str = "<taxonomy>") -> Taxonomy:
    """Validate a parsed TOML document; every error names the file and the field."""
    if not isinstance(data, dict):
        raise TaxonomyError(f"{source}: expected a TOML table at the top level")
    raw = data.get("category")
    if not isinstance(raw, list) or not raw:
        raise TaxonomyError(f"{source}: needs at least one [[category]] table")
    categories, seen = [], set()
    for i, entry in enumerate(raw):
        where = f"{source}: category[{i}]"
        if not isinstance(entry, dict):
            raise TaxonomyError(f"{where} must be a table")
        name = entry.get("name")
        if not isinstance(name, str) or not name.isidentifier():
            raise TaxonomyError(f"{where}.name must be an identifier-like string (letters, digits, _), got {name!r}")
        where = f"{source}: category[{i}] ({name})"
        if name in seen:
            raise TaxonomyError(f"{where}.name is a duplicate")
        seen.add(name)
        definition = entry.get("definition")
        if not isinstance(definition, str) or not definition.strip():
            raise TaxonomyError(f"{where}.definition must be a non-empty string a reviewer can apply")
        unknown = set(entry) - {"name", "definition", "cost_fn", "cost_fp", "review_recall", "block_precision"}
        if unknown:
            raise TaxonomyError(f"{where} has unknown field(s): {', '.join(sorted(unknown))}")
        for required in ("cost_fn", "cost_fp", "review_recall", "block_precision"):
            if required not in entry:
                raise TaxonomyError(f"{where}.{required} is missing")
        categories.append(
            Category(
                name=name,
                definition=definition.strip(),
                cost_fn=_number(f"{where}.cost_fn", entry["cost_fn"], 0.0, None, open_low=True),
                cost_fp=_number(f"{where}.cost_fp", entry["cost_fp"], 0.0, None, open_low=True),
                review_recall=_number(f"{where}.review_recall", entry["review_recall"], 0.0, 1.0, open_low=True),
                block_precision=_number(f"{where}.block_precision", entry["block_precision"], 0.0, 1.0, open_low=True),
            )
        )
    name = data.get("name", "custom")
    version = data.get("version", "1")
    if not isinstance(name, str) or not isinstance(version, str):
        raise TaxonomyError(f"{source}: name and version must be strings")
    return Taxonomy(name=name, version=version, categories=tuple(categories))


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load and validate a taxonomy file (None = the default shipped with the package)."""
    p = Path(path) if path is not None else DEFAULT_TAXONOMY_PATH
    if not p.is_file():
        raise TaxonomyError(f"taxonomy file not found: {p}")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise TaxonomyError(f"{p}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise TaxonomyError(f"{p}: not UTF-8 text: {e}") from None
    return parse_taxonomy(data, str(p))
