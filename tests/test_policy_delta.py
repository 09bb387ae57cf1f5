"""The torch policy a package carries for the loop: 4-bit deltas over the base weights, verified, refused
when it does not fit, and what lets `moderate loop` start from the shipped model."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from moderation.package import ModelPackageError, read_manifest
from moderation.training import policy_delta
from moderation.training.policy_delta import (POLICY_FILE, PolicyDeltaError, attach_policy, dequantize_rows, has_policy,
                                              quantize_rows, unpack_policy)
from moderation.training.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["you are an idiot", "have a lovely day", "I will find you and hurt you", "buy cheap pills now", "kill myself tonight"]


@pytest.mark.parametrize("shape", [(3, 5), (4, 1), (1, 7), (6, 384)])
def test_row_quantization_round_trip_is_within_half_a_step(shape):
    rng = np.random.default_rng(sum(shape))
    delta = rng.normal(0, 0.01, shape).astype(np.float32)
    delta[0] = 0.0  # an unchanged row stays exactly unchanged
    packed, scale = quantize_rows(delta)
    assert packed.dtype == np.uint8 and packed.size == (delta.size + 1) // 2  # two codes per byte
    back = dequantize_rows(packed, scale, shape)
    step = scale.astype(np.float32)[:, None]
    assert np.all(np.abs(back - delta).reshape(shape[0], -1) <= step / 2 + 1e-7)
    assert np.all(back[0] == 0.0)
    assert np.abs(back).max() <= np.abs(delta).max() * 1.001 + 1e-7  # the largest value is a code (7 * scale), not clipped


@pytest.fixture(scope="module")
def fine_tuned(taxonomy):
    """MiniLM from the pip package with every weight nudged, as a fine-tune would (|delta| ~ 0.005)."""
    from moderation.training.policy import PolicyModel

    torch.manual_seed(0)
    model = PolicyModel.from_base(taxonomy.names).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.002)
    return model


@pytest.fixture()
def package(tmp_path, tiny_package):
    out = tmp_path / "pkg"
    shutil.copytree(tiny_package, out)
    from moderation.package import write_manifest

    m = read_manifest(out)
    (out / POLICY_FILE).unlink(missing_ok=True)  # a package from before 0.4.2
    write_manifest(out, {k: v for k, v in m.items() if k not in ("format", "files", "policy")})
    return out


def test_attached_policy_rebuilds_the_fine_tuned_weights_and_scores(package, fine_tuned):
    report = attach_policy(package, fine_tuned, TEXTS, log=lambda *a: None)
    manifest = read_manifest(package)
    assert POLICY_FILE in manifest["files"] and manifest["policy"] == report
    assert report["bytes"] < 14e6  # 4 bits per weight of 22.7M, not 90 MB of fp32
    rebuilt = unpack_policy(package)
    original = dict(fine_tuned.state_dict())
    for name, value in rebuilt.state_dict().items():
        tol = 0.0 if value.ndim < 2 else 0.002 * 4 / 7 + 1e-6  # vectors exact; matrices within half a 4-bit step
        assert torch.max(torch.abs(value - original[name])).item() <= tol, name
    assert np.abs(rebuilt.predict_proba(TEXTS) - fine_tuned.predict_proba(TEXTS)).max() <= 0.02


def test_an_altered_policy_file_or_another_base_is_refused(package, fine_tuned, tmp_path, monkeypatch):
    attach_policy(package, fine_tuned, TEXTS[:2], log=lambda *a: None)
    other_base = tmp_path / "other.safetensors"
    from safetensors.numpy import save_file

    save_file({"embeddings.word_embeddings.weight": np.zeros((2, 2), np.float32)}, str(other_base))
    monkeypatch.setattr(policy_delta, "_base_file", lambda: other_base)
    with pytest.raises(PolicyDeltaError, match="other base weights"):
        unpack_policy(package)
    monkeypatch.undo()
    with open(package / POLICY_FILE, "r+b") as f:  # one flipped byte inside the weights
        f.seek(-100, 2)
        byte = f.read(1)
        f.seek(-100, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelPackageError, match="policy.safetensors: sha256 mismatch"):
        unpack_policy(package)


def test_a_policy_that_does_not_survive_packing_is_not_attached(package, fine_tuned, monkeypatch):
    before = read_manifest(package)
    monkeypatch.setattr(policy_delta, "MAX_ABS_DIFF", -1.0)  # nothing can be that close
    with pytest.raises(PolicyDeltaError, match="not attached"):
        attach_policy(package, fine_tuned, TEXTS[:2], log=lambda *a: None)
    after = read_manifest(package)
    assert not has_policy(package) and POLICY_FILE not in after["files"] and "policy" not in after
    assert after["files"] == before["files"]


def test_an_export_whose_policy_does_not_survive_packing_ships_without_it(tmp_path, tiny_checkpoint, small_examples,
                                                                         taxonomy, monkeypatch):
    """A fine-tuned policy that 4-bit packing moves too far costs the package its torch policy, not the export
    (a loop candidate's checkpoint lives in the registry): found when a real `moderate loop` died there."""
    from moderation.runtime import Moderator
    from moderation.training.export import ExportConfig, export_package

    monkeypatch.setattr(policy_delta, "MAX_ABS_DIFF", -1.0)  # nothing can be that close
    said = []
    out = tmp_path / "pkg"
    export_package(tiny_checkpoint, out, taxonomy, small_examples["validation"], small_examples["test"],
                   ExportConfig(parity_examples=50, max_auprc_drop=1.0), log=said.append)
    assert not has_policy(out) and "policy" not in read_manifest(out)
    assert "## Torch policy" not in (out / "card.md").read_text()  # the card promises no file it lacks
    assert any(m.startswith("warning: the packed policy scores up to") for m in said)
    assert Moderator.load(out).score(TEXTS).shape == (len(TEXTS), len(taxonomy))


def test_the_card_describes_the_attached_policy_with_its_measured_fidelity(tiny_package):
    card, policy = (tiny_package / "card.md").read_text(), read_manifest(tiny_package)["policy"]
    section = card.split("## Torch policy", 1)[1]
    assert f"max |Δp| {policy['max_abs_diff']:.4f}" in section and f"{policy['fidelity_texts']} validation texts" in section


def test_a_package_without_a_policy_says_what_to_pass(package):
    with pytest.raises(PolicyDeltaError, match="--policy CHECKPOINT"):
        unpack_policy(package)


def test_loop_rebuilds_productions_checkpoint_from_its_package_once(tmp_path, package, tiny_package):
    from moderation.training.loop import production_checkpoint

    reg = Registry(tmp_path / "registry")
    reg.add("0.1.0", package, {"utility_cost_optimal": -0.3})
    reg.promote("0.1.0")
    with pytest.raises(RuntimeError, match="carries no torch policy.*--policy CHECKPOINT"):
        production_checkpoint(reg, reg.production(), log=lambda *a: None)
    # the tiny package from the real export carries its policy: the loop can start from it alone
    assert has_policy(tiny_package)
    reg.add("0.2.0", tiny_package, {"utility_cost_optimal": -0.3})
    reg.promote("0.2.0", force=True)
    ckpt = production_checkpoint(reg, reg.production(), log=lambda *a: None)
    assert ckpt == reg.root / "checkpoints" / "0.2.0" and (ckpt / "policy_config.json").is_file()
    assert Registry(tmp_path / "registry").get("0.2.0").checkpoint == "checkpoints/0.2.0"  # remembered
    from moderation.runtime import Moderator
    from moderation.training.policy import PolicyModel

    torch_probs = PolicyModel.load(ckpt).predict_proba(TEXTS)
    assert np.abs(torch_probs - Moderator.load(tiny_package).score(TEXTS)).max() < 0.1  # the export's parity bound


def test_an_empty_registry_starts_from_the_shipped_model(tmp_path, tiny_package, monkeypatch):
    from moderation.training.loop import register_shipped_model

    monkeypatch.setenv("MODERATION_MODEL", str(tiny_package))
    reg = Registry(tmp_path / "registry")
    prod = register_shipped_model(reg, log=lambda *a: None)
    assert prod.version == read_manifest(tiny_package)["version"] and prod.status == "production"
    assert (reg.root / "production" / "manifest.json").is_file()


def test_the_shipped_package_carries_the_policy_its_onnx_model_came_from():
    """models/default: the rebuilt torch policy scores as the shipped INT8 model does (within its parity bound)."""
    from moderation.runtime import Moderator

    pkg = ROOT / "models" / "default"
    manifest = read_manifest(pkg)
    assert manifest["policy"]["max_abs_diff"] <= policy_delta.MAX_ABS_DIFF
    assert sum(f.stat().st_size for f in pkg.iterdir()) < 40e6  # the shipped package stays under 40 MB
    rebuilt = unpack_policy(pkg)
    diff = np.abs(rebuilt.predict_proba(TEXTS) - Moderator.load(pkg).score(TEXTS))
    assert diff.max() <= manifest["parity"]["max_abs_diff"] + 0.02


def test_a_policy_file_the_manifest_does_not_list_is_never_loaded(package, fine_tuned):
    import json

    attach_policy(package, fine_tuned, TEXTS[:2], log=lambda *a: None)
    manifest = json.loads((package / "manifest.json").read_text())
    del manifest["files"][POLICY_FILE]  # e.g. a file dropped into the folder by hand
    (package / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PolicyDeltaError, match="not listed"):
        unpack_policy(package)
