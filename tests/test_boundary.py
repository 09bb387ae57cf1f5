"""The torch-free boundary, read statically: no module of the inference package (moderation/, outside
moderation/training/) nor anything it imports from this project — at module level or inside a function —
imports torch, transformers, peft, scikit-learn or moderation.training. The subprocess tests in
test_runtime.py check the same at run time for the paths they exercise; this one covers every path."""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

FORBIDDEN = ("torch", "transformers", "peft", "sklearn", "moderation.training")
INFERENCE = sorted(p for p in (ROOT / "moderation").glob("*.py")) + [ROOT / "labeling" / "backend.py"]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _file(module: str) -> Path | None:
    for candidate in (ROOT / (module.replace(".", "/") + ".py"), ROOT / module.replace(".", "/") / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def forbidden_reach(start: Path) -> list[str]:
    """Every forbidden import reachable from `start` through this project's modules, as 'path: import'."""
    seen, todo, found = set(), [start], []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                found.append(f"{path.relative_to(ROOT)}: {name}")
            elif name.split(".")[0] in ("moderation", "labeling") and (f := _file(name)) is not None:
                todo.append(f)
    return sorted(set(found))


@pytest.mark.parametrize("module", INFERENCE, ids=lambda p: str(p.relative_to(ROOT)))
def test_inference_modules_never_reach_torch_or_training(module):
    assert forbidden_reach(module) == []


def test_the_check_sees_a_forbidden_import_inside_a_function(tmp_path, monkeypatch):
    """The gate refuses: a module that imports torch only inside a function is caught, and so is one that
    imports a project module which does."""
    bad = ROOT / "moderation" / "_boundary_probe.py"
    via = ROOT / "moderation" / "_boundary_probe_via.py"
    try:
        bad.write_text("def f():\n    import torch\n    return torch\n")
        via.write_text("from moderation._boundary_probe import f\n")
        assert forbidden_reach(bad) == ["moderation/_boundary_probe.py: torch"]
        assert forbidden_reach(via) == ["moderation/_boundary_probe.py: torch"]
        assert "moderation/training/sft.py: torch" in forbidden_reach(ROOT / "moderation" / "training" / "sft.py")
    finally:
        bad.unlink(missing_ok=True)
        via.unlink(missing_ok=True)
