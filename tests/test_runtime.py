"""The torch-free runtime and the export pipeline, on a tiny model exported for real."""

import json
import subprocess
import sys

import numpy as np
import pytest

from moderation.package import ModelPackageError, read_manifest
from moderation.runtime import InputError, Moderator
from tests.conftest import ROOT

TEXTS = ["have a lovely day", "I will hurt you", "free entry: text WIN to 80086", "x" * 3000, ""]


def test_exported_package_is_complete(tiny_package):
    manifest = read_manifest(tiny_package)
    assert {"model.onnx", "tokenizer.json", "taxonomy.toml", "thresholds.json", "card.md"} <= set(manifest["files"])
    assert manifest["quantization"] == "int8"
    assert manifest["fusions"].get("Attention", 0) + manifest["fusions"].get("MultiHeadAttention", 0) >= 1
    card = (tiny_package / "card.md").read_text()
    for needed in ("Intended use", "Known limits", "license", "CC BY 4.0"):
        assert needed in card
    thresholds = json.loads((tiny_package / "thresholds.json").read_text())
    assert all(0 <= t["review"] <= t["block"] <= 1 for t in thresholds.values())


def test_runtime_matches_torch(tiny_package, tiny_checkpoint):
    from moderation.training.policy import PolicyModel

    torch_probs = PolicyModel.load(tiny_checkpoint).predict_proba(TEXTS)
    onnx_probs = Moderator.load(tiny_package).score(TEXTS)
    assert np.abs(torch_probs - onnx_probs).max() < 0.02


def test_results_have_the_documented_shape(tiny_package):
    mod = Moderator.load(tiny_package)
    one = mod.moderate("hello there")
    assert set(one.scores) == set(mod.categories) == set(one.categories)
    assert one.decision in ("allow", "review", "block")
    assert one.flagged == any(one.categories.values())
    many = mod.moderate(TEXTS)
    assert len(many) == len(TEXTS)
    # order is kept although texts are sorted by length internally. Dynamic INT8 picks activation scales
    # per batch, so a score moves by ~1e-3 with its batch-mates: compare with a tolerance.
    singles = np.array([list(mod.moderate(t).scores.values()) for t in TEXTS])
    batched = np.array([list(r.scores.values()) for r in many])
    np.testing.assert_allclose(batched, singles, atol=0.01)
    assert np.abs(batched[:, None, :] - singles[None, :, :]).sum(-1).argmin(1).tolist() == list(range(len(TEXTS)))


def test_bad_items_are_named(tiny_package):
    mod = Moderator.load(tiny_package, max_chars=100)
    with pytest.raises(InputError, match="item 1: expected a string, got int"):
        mod.moderate(["ok", 5])
    with pytest.raises(InputError, match="item 0: 101 characters exceeds max_chars=100"):
        mod.moderate(["a" * 101])


def test_tampered_model_is_refused_naming_the_file(tiny_package, tmp_path):
    import shutil

    copy = tmp_path / "pkg"
    shutil.copytree(tiny_package, copy)
    with open(copy / "model.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ModelPackageError, match=r"model.onnx: sha256 mismatch"):
        Moderator.load(copy)
    (copy / "thresholds.json").unlink()
    with pytest.raises(ModelPackageError, match=r"thresholds.json: missing"):
        Moderator.load(copy)


def test_runtime_path_does_not_import_torch(tiny_package):
    code = (
        "import sys\n"
        "from moderation import Moderator\n"
        "import moderation.scan\n"
        "from moderation.serve import create_app\n"
        f"m = Moderator.load({str(tiny_package)!r})\n"
        "m.moderate(['hello', 'world'])\n"
        "create_app(m)\n"  # the server (and its Label Studio router) too
        "bad = [k for k in ('torch', 'transformers', 'peft', 'sklearn') if k in sys.modules]\n"
        "print('IMPORTED', bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_cli_scan_does_not_import_torch(tiny_package, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("hello\nworld\n")
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "import cli\n"
        f"r = CliRunner().invoke(cli.app, ['scan', {str(src)!r}, '--model', {str(tiny_package)!r}, '--no-progress'])\n"
        "assert r.exit_code == 0, r.output\n"
        "sys.exit(1 if 'torch' in sys.modules else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_harm_after_600_benign_tokens_is_flagged(default_package):
    mod = Moderator.load(default_package)
    benign = ("We met at the library on Tuesday to plan the community garden. Everyone brought seeds, "
              "and the kids painted signs for each row of vegetables. ") * 22
    threat = "I know where you live and I am going to kill you and your whole family."
    assert len(mod.tokenizer.encode(benign).ids) + sum(len(o.ids) for o in mod.tokenizer.encode(benign).overflowing) > 600
    alone, long_text = mod.moderate([threat, benign + threat])
    assert alone.categories["violence"], alone.scores
    assert long_text.categories["violence"], long_text.scores
    # The benign text alone raises no harm category. (`misleading` can still fire on plain statements of
    # events: a documented weakness of that head, not of the windowing tested here.)
    benign_alone = mod.moderate(benign)
    assert not any(benign_alone.categories[c] for c in ("toxic", "hate", "violence", "sexual", "self_harm")), benign_alone.scores


def test_default_model_behaves_sensibly(default_package):
    mod = Moderator.load(default_package)
    clean, spam, insult = mod.moderate([
        "Thanks for the help with my homework yesterday, see you at practice!",
        "CONGRATULATIONS! You have won a £1000 cash prize. Call 09061701461 now to claim, T&Cs apply.",
        "shut up you worthless idiot, nobody wants you here",
    ])
    assert clean.decision == "allow", clean.scores
    assert spam.categories["spam"], spam.scores
    assert insult.categories["toxic"], insult.scores


def test_parity_set_holds_every_positive_of_a_rare_category_and_no_more():
    """0.5.1's export was refused on 14 violence positives, where one rank swap moves AUPRC by 0.009; with all
    95 validation positives the drop was -0.0001 (none). Common categories keep the plain random draw."""
    from moderation.training.data import Example
    from moderation.training.export import ExportConfig, parity_set

    cats = ["toxic", "violence"]
    val = [Example(f"t{i}", f"text {i}", "s", {"toxic": float(i % 2), "violence": float(i % 50 == 0)}) for i in range(1000)]
    val += [Example(f"m{i}", f"masked {i}", "s", {"toxic": 1.0, "violence": None}) for i in range(5)]
    chosen = parity_set(val, cats, 200, min_positives=100)
    ids = {e.id for e in chosen}
    assert {f"t{i}" for i in range(0, 1000, 50)} <= ids  # all 20 violence positives, not the ~4 drawn
    assert len(chosen) < 200 + 20  # only positives were added
    # the draw is seeded: torch and ONNX, and two exports of one checkpoint, see the same texts
    assert [e.id for e in parity_set(val, cats, 200, min_positives=0)] == [e.id for e in parity_set(val, cats, 200, 0)]
    assert len(parity_set(val, cats, 200, min_positives=0)) == 200  # nothing added when no category is short
    with pytest.raises(Exception, match="parity_min_positives"):
        ExportConfig(parity_min_positives=-1)


def test_parity_gate_refuses_a_model_that_drifts(tiny_checkpoint, taxonomy, small_examples, tmp_path):
    from moderation.training.export import ExportConfig, ParityError, export_package

    cfg = ExportConfig(parity_examples=100, max_abs_diff=1e-9)  # no INT8 model is this close
    with pytest.raises(ParityError, match="a probability moved by"):
        export_package(tiny_checkpoint, tmp_path / "refused", taxonomy, small_examples["validation"],
                       small_examples["test"][:50], cfg, log=lambda *a: None)
    assert not (tmp_path / "refused").exists()
    assert not list(tmp_path.glob(".refused.*"))  # no half-written package left behind
