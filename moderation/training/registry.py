"""Model versions, their measured metrics, and which one is in production.

    data/registry/                    (or $MODERATION_REGISTRY, or --registry)
      registry.json                   every version, its metrics and gate decisions; the production history
      production -> packages/0.3.0    symlink: point `moderate scan --model` or $MODERATION_MODEL here
      packages/<version>/             model packages (from `moderate export` or `moderate loop`)
      checkpoints/<version>/          torch policy checkpoints, the starting point of the next RL round

The promotion gate (`gate.py`): both packages score the gate split (carved from validation; no reviewer sees
it, nothing is tuned on it) and a paired bootstrap decides whether the candidate's reviewer utility is
higher beyond noise and whether any category's AUPRC fell beyond noise. Test metrics are recorded and
listed for reporting only: the test split never chooses a model. They come from the package's own export
report or, for a package exported before that report carried utility, are measured on registration.

registry.json and the symlink are replaced atomically (temp + fsync + rename): a crash leaves the old
registry or the new one. Rollback moves production back to the version before it.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from dataclasses import asdict, dataclass, field
from pathlib import Path

from moderation.errors import ModerationError
from moderation.package import atomic_write_text
from moderation.training.gate import MAX_AUPRC_DROP, Gate, paired_gate

DEFAULT_ROOT = Path("data/registry")


class RegistryError(ModerationError, RuntimeError):
    """A registry operation that cannot be done; the message says why."""


@dataclass
class Version:
    version: str
    package: str  # folder, relative to the registry root when inside it
    checkpoint: str | None = None
    parent: str | None = None
    status: str = "candidate"  # candidate | production | retired | rejected
    created: str = ""
    metrics: dict = field(default_factory=dict)  # macro_auprc, auprc{category}, utility_cost_optimal, utility_review
    gate: dict | None = None
    note: str = ""


def metrics_from_report(test_report: dict) -> dict:
    return {"macro_auprc": test_report["macro_auprc"],
            "auprc": {c: r["auprc"] for c, r in test_report["categories"].items()},
            "utility_cost_optimal": test_report["utility_cost_optimal"],
            "utility_review": test_report["utility_per_item"], "n_items": test_report.get("n_items")}


def _export_test_report(package: Path) -> dict:
    path = Path(package) / "export_report.json"
    try:
        return (json.loads(path.read_text()).get("test") or {}) if path.is_file() else {}
    except json.JSONDecodeError as e:
        raise RegistryError(f"{path}: not valid JSON ({e})") from None


def has_utility(package: Path) -> bool:
    """Does the package's export report already carry the metrics the gate needs?"""
    return "utility_cost_optimal" in _export_test_report(package)


def package_metrics(package: Path, test_examples=None) -> dict:
    """The package's test metrics (reporting only): from its export report, or measured now when the report
    predates them."""
    if has_utility(package):
        return metrics_from_report(_export_test_report(package))
    if test_examples is None:
        raise RegistryError(f"{package}: its export report has no reviewer utility; measure it on the test split")
    from moderation.runtime import Moderator
    from moderation.training.evaluate import Thresholds, evaluate_examples

    mod = Moderator.load(package)
    thresholds = Thresholds(review=mod.review_thresholds.tolist(), block=mod.block_thresholds.tolist())
    return metrics_from_report(evaluate_examples(mod.score, test_examples, mod.taxonomy, thresholds)[0])


def package_scorer(package: Path, platform: str | None = None):
    """texts -> probabilities, through the package's own runtime (what the gate compares); with `platform`,
    through the graph adapted to that platform."""
    from moderation.runtime import Moderator

    return Moderator.load(package, platform=platform).score


def routed_scores(package: Path, scorer, examples) -> np.ndarray:
    """What the package says about each gate example as it would in use: a platform's own graph for the
    texts of the sources it was adapted on (manifest "platforms"), the main graph for everything else."""
    from moderation.package import read_manifest

    graph_of = {}  # source -> the platform whose graph scores it; every other source: the main graph (None)
    for name, info in (read_manifest(package, verify=False).get("platforms") or {}).items():
        graph_of.update({source: name for source in info.get("sources", [])})
    groups: dict[str | None, list[int]] = {}
    for i, e in enumerate(examples):
        groups.setdefault(graph_of.get(e.source), []).append(i)
    out = None
    for name, rows in groups.items():  # each text scored once, by the graph that scores it in use
        score = scorer(package) if name is None else scorer(package, name)
        scores = np.asarray(score([examples[i].text for i in rows]), dtype=np.float64)
        out = np.zeros((len(examples), scores.shape[1])) if out is None else out
        out[rows] = scores
    return out if out is not None else np.zeros((0, 0))


class Registry:
    FILE = "registry.json"

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root or os.environ.get("MODERATION_REGISTRY") or DEFAULT_ROOT)
        self.path = self.root / self.FILE
        self.versions: dict[str, Version] = {}
        self.history: list[str] = []  # production versions, oldest first
        if self.path.is_file():
            try:
                raw = json.loads(self.path.read_text())
                self.versions = {v["version"]: Version(**v) for v in raw["versions"]}
                self.history = list(raw["history"])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise RegistryError(f"{self.path}: not a valid registry ({e})") from None

    # ------------------------------------------------------------ reading

    def list(self) -> list[Version]:
        return sorted(self.versions.values(), key=lambda v: v.created)

    def get(self, version: str) -> Version:
        if version not in self.versions:
            raise RegistryError(f"no version {version!r} in {self.root}; known: {', '.join(self.versions) or 'none'}")
        return self.versions[version]

    def production(self) -> Version | None:
        return self.versions[self.history[-1]] if self.history else None

    def resolve(self, path: str | None) -> Path | None:
        if path is None:
            return None
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    def next_version(self) -> str:
        """Bump the patch number of the newest version (0.2.0 -> 0.2.1)."""
        newest = max((v.version for v in self.versions.values()), key=_version_key, default="0.0.0")
        major, minor, patch = (list(_version_key(newest)) + [0, 0, 0])[:3]
        return f"{major}.{minor}.{patch + 1}"  # newer than the newest, so never taken

    # ------------------------------------------------------------ writing

    def add(self, version: str, package: Path, metrics: dict, checkpoint: Path | None = None, parent: str | None = None,
            note: str = "") -> Version:
        if version in self.versions:
            raise RegistryError(f"version {version} is already registered")
        if not Path(package).exists():
            raise RegistryError(f"{package}: no such folder")
        if not (package / "manifest.json").is_file():
            raise RegistryError(f"{package} is not a model package (no manifest.json)")
        if checkpoint is not None:
            if not Path(checkpoint).exists():
                raise RegistryError(f"--checkpoint {checkpoint}: no such folder (the torch checkpoint the package was "
                                    "exported from, e.g. runs/sft)")
            if not (Path(checkpoint) / "policy_config.json").is_file():
                raise RegistryError(f"--checkpoint {checkpoint}: not a policy checkpoint (no policy_config.json)")
        v = Version(version, self._rel(package), self._rel(checkpoint) if checkpoint else None, parent,
                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), metrics=metrics, note=note)
        self.versions[version] = v
        self.save()
        return v

    def promote(self, version: str, force: bool = False, max_auprc_drop: float = MAX_AUPRC_DROP, gate_examples=None,
                scorer=package_scorer, focus_sources: set[str] | None = None, focus_categories=None) -> Gate:
        """Run the gate against production on `gate_examples` (the gate split); make `version` production if it
        passes (or `force`). `scorer(package)` gives a package's texts -> probabilities function.
        `focus_sources`: the sources the reviews came from; their gate items must improve on what the sources'
        annotators labelled (or `focus_categories`, a boolean per category, for a platform not in the datasets)
        and the rest must not fall (gate.py)."""
        v = self.get(version)
        current = self.production()
        if current is not None and current.version == version:
            raise RegistryError(f"{version} is already in production")
        result = self.compare(v, current, gate_examples, max_auprc_drop, scorer, focus_sources, focus_categories)
        v.gate = asdict(result)
        if result.passed or force:
            if current is not None:
                current.status = "retired"
            v.status = "production"
            if force and not result.passed:
                v.note = (v.note + "; " if v.note else "") + "promoted with --force over the gate"
            self.history.append(version)
            self._point_production(v)
        else:
            v.status = "rejected"
        self.save()
        return result

    def compare(self, candidate: Version, production: Version | None, gate_examples, max_auprc_drop: float, scorer,
                focus_sources: set[str] | None = None, focus_categories=None) -> Gate:
        if production is None:
            return Gate(True, ["first version: nothing to compare with"])
        if not gate_examples:
            return Gate(False, ["no gate split to compare on (the datasets were not found; pass --data-dir): the gate "
                                "never falls back to the test split"])
        from moderation.taxonomy import load_taxonomy
        from moderation.training.data import label_matrix

        taxonomy = load_taxonomy(self.resolve(candidate.package) / "taxonomy.toml")
        other = load_taxonomy(self.resolve(production.package) / "taxonomy.toml")
        if other.names != taxonomy.names:
            return Gate(False, [f"the candidate's categories {taxonomy.names} differ from production's {other.names}"])
        targets, mask = label_matrix(gate_examples, taxonomy.names)
        focus = None if not focus_sources else np.array([e.source in focus_sources for e in gate_examples])
        return paired_gate(routed_scores(self.resolve(candidate.package), scorer, gate_examples),
                           routed_scores(self.resolve(production.package), scorer, gate_examples), targets, mask, taxonomy, max_auprc_drop,
                           focus=focus, focus_categories=None if not focus_sources else
                           focus_categories if focus_categories is not None else annotated_categories(focus_sources, taxonomy))

    def rollback(self) -> Version:
        """Production goes back to the version before the current one."""
        if len(self.history) < 2:
            raise RegistryError("nothing to roll back to: production has had only "
                                f"{len(self.history)} version(s)")
        retired = self.versions[self.history.pop()]
        retired.status = "retired"
        back = self.versions[self.history[-1]]
        back.status = "production"
        self._point_production(back)
        self.save()
        return back

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        body = {"format": 1, "production": self.history[-1] if self.history else None, "history": self.history,
                "versions": [asdict(v) for v in self.list()]}
        atomic_write_text(self.path, json.dumps(body, indent=2) + "\n")

    def _rel(self, p: Path) -> str:
        p = Path(p).resolve()
        try:
            return str(p.relative_to(self.root.resolve()))
        except ValueError:
            return str(p)

    def _point_production(self, v: Version) -> None:
        """Swap the `production` symlink atomically (a new link renamed over the old)."""
        self.root.mkdir(parents=True, exist_ok=True)
        link, tmp = self.root / "production", self.root / ".production.tmp"
        tmp.unlink(missing_ok=True)
        target = self.resolve(v.package)
        os.symlink(os.path.relpath(target, self.root) if target.is_relative_to(self.root) else target, tmp)
        os.replace(tmp, link)


def _version_key(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (0,)


def listing(reg: Registry):
    """`moderate registry list` for people: a table that fits 80 columns (one short row per version)
    and, below it, the gate's reasons for each refused version."""
    from rich.table import Table

    prod = reg.production()
    table = Table(title=f"production: {prod.version if prod else '(none)'}  ({reg.root})", title_justify="left")
    for col in ("version", "status", "parent", "created", "AUPRC", "utility", "gate"):
        table.add_column(col, no_wrap=True, justify="right" if col in ("AUPRC", "utility") else "left")
    refused = []
    for v in reg.list():
        m = v.metrics
        gate = "" if v.gate is None else ("passed" if v.gate["passed"] else "refused")
        if v.gate is not None and not v.gate["passed"]:
            refused.append(f"{v.version} refused: " + "; ".join(v.gate["reasons"]))
        table.add_row(v.version + (" *" if prod and v.version == prod.version else ""), v.status, v.parent or "", v.created[:10],
                      f"{m.get('macro_auprc', float('nan')):.3f}", f"{m.get('utility_cost_optimal', float('nan')):.3f}", gate)
    return table, refused


def add_package(reg: Registry, package: Path, checkpoint: Path | None, version: str | None, test_examples, log=print) -> Version:
    """`moderate registry add`: register a package with its test metrics (reporting only); `test_examples(taxonomy)`
    is called only when the package's export report predates them."""
    from moderation.package import read_manifest
    from moderation.taxonomy import load_taxonomy

    version = version or read_manifest(package)["version"]
    test = None
    if not has_utility(package):
        test = test_examples(load_taxonomy(package / "taxonomy.toml"))
        log(f"measuring {package} on {len(test)} test texts…")
    return reg.add(version, package, package_metrics(package, test), checkpoint=checkpoint)


def annotated_categories(sources, taxonomy) -> np.ndarray:
    """Per category, whether any of `sources`' annotators labelled it (data.SOURCE_TABLE): the gate's focus
    categories. Assumed negatives and negatives-if-clean are priors, not annotations, so they are not evidence
    that reviews of that platform taught something."""
    from moderation.training.data import SOURCE_TABLE

    labelled = {c for s in sources if s in SOURCE_TABLE for c in SOURCE_TABLE[s].labels}
    return np.array([c in labelled for c in taxonomy.names])
