"""The model package on disk: what files it holds and how they are verified.

    models/<name>/
      model.onnx        the policy, INT8, outputs calibrated probabilities
      tokenizer.json    the tokenizer (tokenizers library)
      taxonomy.toml     the policy the model was trained for
      thresholds.json   review / block thresholds per category, tuned on validation data
      card.md           data sources and licenses, metrics, intended use, limits
      policy.safetensors (optional) the torch policy as a 4-bit delta over the base weights, for the
                        feedback loop to start from (moderation/training/policy_delta.py); the runtime
                        never reads it
      platforms/<name>.onnx (optional) a graph adapted to one platform's reviews (`moderate loop --platform`):
                        `Moderator.load(platform=name)` scores with it instead of model.onnx; the manifest's
                        "platforms" says which graph and which sources each platform covers
      manifest.json     version, settings and the sha256 of every file above (verified on load)

Runtime-safe: standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from moderation.errors import ModerationError

PACKAGE_FILES = ("model.onnx", "tokenizer.json", "taxonomy.toml", "thresholds.json", "card.md")
OPTIONAL_FILES = ("policy.safetensors",)  # listed and verified when present
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class ModelPackageError(ModerationError, RuntimeError):
    """A model package is missing, incomplete or altered; the message names the file."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder, fsync, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a model package is meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_replace(tmp: Path, path: Path) -> None:
    """Finish a write another library made to `tmp` (safetensors, ONNX): fsync it, then rename over `path`."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def platform_graphs(info: dict) -> tuple[str, ...]:
    """The platform graphs a manifest (or its info) names, relative to the package."""
    platforms = info.get("platforms") or {}
    return tuple(p["graph"] for p in platforms.values() if isinstance(p, dict) and isinstance(p.get("graph"), str))


def write_manifest(package_dir: Path, info: dict) -> dict:
    names = PACKAGE_FILES + tuple(n for n in OPTIONAL_FILES if (package_dir / n).is_file()) + platform_graphs(info)
    files = {name: {"sha256": sha256_of(package_dir / name), "bytes": (package_dir / name).stat().st_size} for name in names}
    manifest = {"format": FORMAT_VERSION, **info, "files": files}
    atomic_write_text(package_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(package_dir: Path, verify: bool = True) -> dict:
    """Read the manifest and (by default) check every file's sha256 against it."""
    package_dir = Path(package_dir)
    if not package_dir.is_dir():
        raise ModelPackageError(f"model package not found: {package_dir} is not a folder")
    mpath = package_dir / MANIFEST
    if not mpath.is_file():
        raise ModelPackageError(f"{mpath}: missing; this is not a model package (export one with `moderate export`)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelPackageError(f"{mpath}: not valid JSON ({e})") from None
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ModelPackageError(f"{mpath}: has no 'files' table")
    for name in PACKAGE_FILES:  # every file present first, then every hash
        if name not in files:
            raise ModelPackageError(f"{mpath}: does not list {name}")
        if not (package_dir / name).is_file():
            raise ModelPackageError(f"{package_dir / name}: missing from the model package")
    platforms = manifest.get("platforms") or {}
    if not isinstance(platforms, dict) or any(not isinstance(p, dict) or not isinstance(p.get("graph"), str)
                                              or not p["graph"].startswith("platforms/") or ".." in p["graph"]
                                              for p in platforms.values()):
        raise ModelPackageError(f"{mpath}: 'platforms' must map each platform to {{\"graph\": \"platforms/NAME.onnx\", …}}")
    for name in platform_graphs(manifest):
        if name not in files:
            raise ModelPackageError(f"{mpath}: names the platform graph {name} but does not list it under 'files'")
    listed_optional = tuple(n for n in OPTIONAL_FILES if n in files) + platform_graphs(manifest)
    for name in listed_optional:
        if not (package_dir / name).is_file():
            raise ModelPackageError(f"{package_dir / name}: listed in the manifest but missing from the model package")
    for name in PACKAGE_FILES + listed_optional:
        path = package_dir / name
        if verify:
            expected = files[name].get("sha256")
            actual = sha256_of(path)
            if actual != expected:
                raise ModelPackageError(
                    f"{path}: sha256 mismatch (expected {str(expected)[:12]}…, got {actual[:12]}…); the file is truncated "
                    "or altered — re-export or re-install the model package")
    return manifest
