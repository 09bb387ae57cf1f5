"""`Moderator`: score texts with a model package. ONNX Runtime + tokenizers + numpy; no torch.

    from moderation import Moderator
    mod = Moderator.load()                 # the shipped default model (or $MODERATION_MODEL)
    mod.moderate("you are an idiot")       # -> ModerationResult(flagged=True, decision="review", ...)
    mod.moderate(["a", "b"])               # -> [ModerationResult, ModerationResult]

Per text: `scores` (calibrated probability per category), `categories` (score >= that category's
review threshold), `flagged` (any category), `decision`: "block" if any score reaches its block
threshold, "review" if flagged, else "allow".
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from moderation.errors import ModerationError
from moderation.package import ModelPackageError, read_manifest
from moderation.taxonomy import load_taxonomy
from moderation.windows import encode_windows, length_sorted_batches, load_tokenizer, max_over_windows, pad_batch, sentence_mode

MODEL_ENV = "MODERATION_MODEL"
DEFAULT_MAX_CHARS = 1_000_000
MAX_BATCH_TOKENS = 2048  # rows x padded length per ONNX call: 32 tweets, or 8 full 256-token windows


@dataclass
class ModerationResult:
    flagged: bool
    decision: str  # "allow" | "review" | "block"
    categories: dict[str, bool]
    scores: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


class InputError(ModerationError, ValueError):
    """One input item is unusable; the message names the item."""


def default_model_path() -> Path:
    """$MODERATION_MODEL, else models/default from a source checkout / editable install, else the wheel's copy."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parent.parent / "models" / "default"
    if (checkout / "manifest.json").is_file():
        return checkout
    spec = importlib.util.find_spec("moderation_models")  # a wheel ships models/default as package data
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))) / "default"
    raise ModelPackageError("no default model package found: set MODERATION_MODEL or pass a path")


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise RuntimeError(f"CUDA requested but this onnxruntime has only {available}; pip install onnxruntime-gpu")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    # auto: the GPU when this onnxruntime build has one, else the CPU
    return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []) + ["CPUExecutionProvider"]


class Moderator:
    def __init__(self, package_dir: Path, manifest: dict, session, tokenizer, taxonomy, thresholds: dict,
                 batch_size: int, max_chars: int, max_windows: int | None, normalize: bool = True):
        self.package_dir = package_dir
        self.manifest = manifest
        self.session = session
        self.tokenizer = tokenizer
        self.taxonomy = taxonomy
        self.categories = taxonomy.names
        self.review_thresholds = np.array([thresholds[c]["review"] for c in self.categories])
        self.block_thresholds = np.array([thresholds[c]["block"] for c in self.categories])
        self.batch_size = batch_size
        self.max_batch_tokens = max(MAX_BATCH_TOKENS, batch_size)
        self.max_chars = max_chars
        self.max_windows = max_windows
        self.normalize = normalize
        # Packages from before 0.4 (mean-pooled) scored sentences of long texts only, capped; keep their scores.
        self.sentence_segments = sentence_mode(manifest.get("pooling", "mean"))
        self._input_names = {i.name for i in session.get_inputs()}

    @classmethod
    def load(cls, path: str | Path | None = None, *, threads: int | None = None, device: str = "auto",
             batch_size: int = 32, max_chars: int = DEFAULT_MAX_CHARS, max_windows: int | None = None,
             verify: bool = True, normalize: bool = True) -> "Moderator":
        """Load a model package (None = the default model). The manifest's sha256s are checked first.

        threads: ONNX Runtime intra-op threads (None = all cores). device: "auto" | "cpu" | "cuda".
        max_chars: longer texts get an InputError instead of a silent truncation.
        max_windows: score only each text's first N 256-token windows (None: all; max_chars bounds the work).
        normalize: undo cheap obfuscation first (moderation/normalize.py); off only to measure what it buys.
        """
        import onnxruntime as ort

        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
        if batch_size < 1 or max_chars < 1:
            raise ValueError("batch_size and max_chars must be >= 1")
        package_dir = Path(path).expanduser() if path is not None else default_model_path()
        manifest = read_manifest(package_dir, verify=verify)
        taxonomy = load_taxonomy(package_dir / "taxonomy.toml")
        try:
            thresholds = json.loads((package_dir / "thresholds.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ModelPackageError(f"{package_dir / 'thresholds.json'}: not valid JSON ({e})") from None
        missing = [c for c in taxonomy.names if c not in thresholds]
        if missing:
            raise ModelPackageError(f"{package_dir / 'thresholds.json'}: no thresholds for {missing}")
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(str(package_dir / "model.onnx"), sess_options=opts, providers=_providers(device))
        except Exception as e:  # onnxruntime raises its own exception types for corrupt graphs
            raise ModelPackageError(f"{package_dir / 'model.onnx'}: onnxruntime could not load it ({e})") from None
        tokenizer = load_tokenizer(package_dir / "tokenizer.json", manifest["max_length"], manifest["stride"])
        return cls(package_dir, manifest, session, tokenizer, taxonomy, thresholds, batch_size, max_chars, max_windows, normalize)

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unknown"))

    # ------------------------------------------------------------ scoring

    def _check(self, texts: Sequence[object]) -> list[str]:
        out = []
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(f"item {i}: expected a string, got {type(t).__name__}")
            if len(t) > self.max_chars:
                raise InputError(f"item {i}: {len(t)} characters exceeds max_chars={self.max_chars} (raise it with max_chars=)")
            out.append(t)
        return out

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities, shape (len(texts), C). Long texts: max over overlapping windows."""
        texts = self._check(texts)
        if not texts:
            return np.zeros((0, len(self.categories)), dtype=np.float32)
        windows = encode_windows(self.tokenizer, texts, max_windows=self.max_windows, normalize=self.normalize,
                                 sentence_segments=self.sentence_segments)
        probs = np.empty((len(windows.ids), len(self.categories)), dtype=np.float32)
        for index in length_sorted_batches(windows, self.batch_size, self.max_batch_tokens):
            ids, mask = pad_batch(windows, index)
            feeds = {"input_ids": ids, "attention_mask": mask}
            probs[index] = self.session.run(["probs"], {k: v for k, v in feeds.items() if k in self._input_names})[0]
        return max_over_windows(probs, windows.owner, len(texts))

    def results_from_scores(self, scores: np.ndarray) -> list[ModerationResult]:
        review = scores >= self.review_thresholds
        block = scores >= self.block_thresholds
        out = []
        for i in range(len(scores)):
            flagged = bool(review[i].any())
            decision = "block" if block[i].any() else ("review" if flagged else "allow")
            out.append(ModerationResult(
                flagged=flagged, decision=decision,
                categories={c: bool(v) for c, v in zip(self.categories, review[i])},
                scores={c: round(float(v), 6) for c, v in zip(self.categories, scores[i])},
            ))
        return out

    def moderate(self, text_or_texts: str | Sequence[str]) -> ModerationResult | list[ModerationResult]:
        """One result for a string; a list of results, in input order, for a list of strings."""
        if isinstance(text_or_texts, str):
            return self.results_from_scores(self.score([text_or_texts]))[0]
        if not isinstance(text_or_texts, (list, tuple)):
            raise InputError(f"expected a string or a list of strings, got {type(text_or_texts).__name__}")
        return self.results_from_scores(self.score(text_or_texts))

    __call__ = moderate
