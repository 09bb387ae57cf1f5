"""Shared fixtures: tiny randomly initialised BERT policies (fast), the real datasets, a tiny model package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tqdm

# tqdm's monitor thread holds a lock that a fork (mutmut runs each mutant in a forked child) can copy in its
# locked state, and the child then hangs on its first progress bar. The suite does not need the monitor.
tqdm.tqdm.monitor_interval = 0

ROOT = Path(__file__).resolve().parent.parent
TINY_ENCODER = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    max_position_embeddings=512, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def data_dir() -> Path:
    return Path(os.environ.get("MODERATION_DATA_DIR", ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def taxonomy():
    from moderation.taxonomy import load_taxonomy

    return load_taxonomy()


@pytest.fixture(scope="session")
def examples(taxonomy):
    from moderation.training.data import load_examples

    if not data_dir().is_dir():
        pytest.skip(f"datasets not found at {data_dir()}")
    return load_examples(data_dir(), taxonomy=taxonomy)


def make_tiny_policy(categories, finetune="full", max_length=32, stride=8, seed=0):
    import torch

    from moderation.training.policy import PolicyConfig, PolicyModel, base_model_dir

    torch.manual_seed(seed)
    cfg = PolicyConfig(categories=list(categories), encoder=dict(TINY_ENCODER), max_length=max_length, stride=stride,
                       finetune=finetune)
    return PolicyModel.from_config(cfg, base_model_dir() / "tokenizer.json")


@pytest.fixture
def tiny_policy(taxonomy):
    return make_tiny_policy(taxonomy.names)


@pytest.fixture(scope="session")
def small_examples(examples):
    """A few hundred real examples per split, every source represented."""
    by = {"train": [], "validation": [], "gate": [], "test": []}
    seen = {}
    for e in examples:
        key = (e.source, e.split)
        if seen.get(key, 0) < 40:
            seen[key] = seen.get(key, 0) + 1
            by[e.split].append(e)
    return by


# Mutation runs start hundreds of pytest processes; MODERATION_TEST_CACHE lets them share one tiny model built
# once (scripts/mutation_report.py says how) instead of exporting it in every process. Unset: a fresh one.
TEST_CACHE = Path(os.environ["MODERATION_TEST_CACHE"]) if os.environ.get("MODERATION_TEST_CACHE") else None


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, taxonomy):
    if TEST_CACHE and (TEST_CACHE / "tiny_ckpt" / "policy_config.json").is_file():
        return TEST_CACHE / "tiny_ckpt"
    out = TEST_CACHE / "tiny_ckpt" if TEST_CACHE else tmp_path_factory.mktemp("tiny_ckpt")
    make_tiny_policy(taxonomy.names).save(out)
    return out


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory, taxonomy, tiny_checkpoint, request):
    """The tiny policy exported through the real pipeline (ONNX, fusion, INT8, gate, card, manifest)."""
    from moderation.training.export import ExportConfig, export_package

    if TEST_CACHE and (TEST_CACHE / "tiny" / "manifest.json").is_file():
        return TEST_CACHE / "tiny"
    small_examples = request.getfixturevalue("small_examples")
    out = TEST_CACHE / "tiny" if TEST_CACHE else tmp_path_factory.mktemp("pkg") / "tiny"
    export_package(tiny_checkpoint, out, taxonomy, small_examples["validation"], small_examples["test"],
                   # A random tiny model ranks by chance, so its AUPRC swings with any rounding: only the
                   # probability bound of the gate is meaningful here (the real model gets both bounds).
                   ExportConfig(parity_examples=200, max_auprc_drop=1.0), log=lambda *a: None)
    return out


@pytest.fixture(scope="session")
def eager_tiny_package(tiny_package, tmp_path_factory):
    """The tiny random package with every review threshold at 0.001, so its /predict always proposes
    categories (its scores sit near 0.05, below any cost threshold); the scores are the tiny package's."""
    import json
    import shutil

    from moderation.package import read_manifest, write_manifest

    pkg = tmp_path_factory.mktemp("eager") / "tiny"
    shutil.copytree(tiny_package, pkg)
    thresholds = json.loads((pkg / "thresholds.json").read_text())
    for t in thresholds.values():
        t["review"] = 0.001
    (pkg / "thresholds.json").write_text(json.dumps(thresholds))
    write_manifest(pkg, {k: v for k, v in read_manifest(pkg, verify=False).items() if k not in ("format", "files")})
    return pkg


@pytest.fixture(scope="session")
def default_package():
    pkg = ROOT / "models" / "default"
    if not (pkg / "manifest.json").is_file():
        pytest.skip("models/default has not been exported yet")
    return pkg


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A real Label Studio on a free loopback port in a temp dir, started once per test session.

    With MODERATION_TEST_LABEL_STUDIO=<folder> a server in that folder is reused (started there if none runs)
    and left running: mutation testing runs the queue tests once per mutant and cannot wait 40 s each time."""
    from labeling.server import free_port, start, stop

    shared = os.environ.get("MODERATION_TEST_LABEL_STUDIO")
    root = Path(shared) if shared else tmp_path_factory.mktemp("labelstudio")
    creds = start(root, port=free_port(), log=lambda *a: None)
    yield creds, root
    if not shared:
        stop(root)
