"""`Moderator`: score texts with a model package. ONNX Runtime + tokenizers + numpy; no torch.

    from moderation import Moderator
    mod = Moderator.load()                 # the shipped default model (or $MODERATION_MODEL)
    mod.moderate("you are an idiot")       # -> ModerationResult(flagged=True, decision="review", ...)
    mod.moderate(["a", "b"])               # -> [ModerationResult, ModerationResult]

Per text: `scores` (calibrated probability per category), `categories` (score >= that category's
review threshold), `flagged` (any category), `decision`: "block" if any score reaches its block
threshold, "review" if flagged, else "allow". With `moderate(..., spans=True)`, `spans`: where in the
text each flagged category's evidence sits (moderation/spans.py; docs/spans.md says what a span means).
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
from moderation.spans import ALL, CATEGORY_TOKENS, FLAGGED, SEGMENT, SPAN_HEAD, SPAN_MODES, Span, merge_spans, span_mode, spans_from_token_probs
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
    spans: list[Span] | None = None  # only when asked for: moderate(..., spans=True); [] when nothing is flagged

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.spans is None:
            del out["spans"]
        return out


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


def platform_graph(manifest: dict, platform: str | None, package_dir: Path) -> str:
    """The graph that scores `platform`'s texts: model.onnx for none, else the platform's adapted graph. An
    unknown platform is an error, never a silent fallback to the main graph."""
    if platform is None:
        return "model.onnx"
    platforms = manifest.get("platforms") or {}
    if platform not in platforms:
        known = ", ".join(sorted(platforms)) or "none"
        raise InputError(f"model package {package_dir} has no graph adapted to platform {platform!r} (its platforms: {known}); "
                         "score without --platform, or adapt one with `moderate loop --platform NAME`")
    return platforms[platform]["graph"]


class Moderator:
    def __init__(self, package_dir: Path, manifest: dict, session, tokenizer, taxonomy, thresholds: dict,
                 batch_size: int, max_chars: int, max_windows: int | None, normalize: bool = True, platform: str | None = None):
        self.package_dir = package_dir
        self.platform = platform
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
        outputs = {o.name for o in session.get_outputs()}
        spans = manifest.get("spans") or {}
        self.span_categories = [c for c in spans.get("categories", []) if "span_probs" in outputs]
        self.span_threshold = float(spans.get("threshold", 0.5))
        # spans="all": the head alone decides, on the text's own windows (sentence segments read out of context
        # make it mark more); a package tuned before this mode existed falls back to the flagged threshold.
        self.span_threshold_all = float(spans.get("threshold_all", self.span_threshold))
        self.has_token_probs = "token_probs" in outputs

    @classmethod
    def load(cls, path: str | Path | None = None, *, threads: int | None = None, device: str = "auto",
             batch_size: int = 32, max_chars: int = DEFAULT_MAX_CHARS, max_windows: int | None = None,
             verify: bool = True, normalize: bool = True, platform: str | None = None) -> "Moderator":
        """Load a model package (None = the default model). The manifest's sha256s are checked first.

        threads: ONNX Runtime intra-op threads (None = all cores). device: "auto" | "cpu" | "cuda".
        max_chars: longer texts get an InputError instead of a silent truncation.
        max_windows: score only each text's first N 256-token windows (None: all; max_chars bounds the work).
        normalize: undo cheap obfuscation first (moderation/normalize.py); off only to measure what it buys.
        platform: score with the graph adapted to this platform's reviews (`moderate loop --platform`; the
        manifest's "platforms"); None: the package's main graph.
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
        graph = package_dir / platform_graph(manifest, platform, package_dir)
        try:
            session = ort.InferenceSession(str(graph), sess_options=opts, providers=_providers(device))
        except Exception as e:  # onnxruntime raises its own exception types for corrupt graphs
            raise ModelPackageError(f"{graph}: onnxruntime could not load it ({e})") from None
        tokenizer = load_tokenizer(package_dir / "tokenizer.json", manifest["max_length"], manifest["stride"])
        return cls(package_dir, manifest, session, tokenizer, taxonomy, thresholds, batch_size, max_chars, max_windows, normalize,
                   platform)

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

    def score_with_spans(self, texts: Sequence[str], mode: str = FLAGGED) -> tuple[np.ndarray, list[list[Span]]]:
        """Scores as `score`, plus each text's spans for the categories it is flagged in.

        A category the span head knows (toxic, hate, violence in the shipped model) gets the head's spans;
        any other flagged category, or one where the head marks nothing, gets the tokens whose own score
        reaches the category's review threshold (the score is the max over tokens, so those tokens are what
        flagged it); if only the [CLS]/[SEP] tokens did, the highest-scoring sentence or window.

        mode=ALL: the head's categories get the head's spans whether flagged or not, from the text's windows
        (not its sentence segments) at `span_threshold_all`; the other categories as above."""
        if mode not in SPAN_MODES:
            raise InputError(f"span mode must be one of {SPAN_MODES}, got {mode!r}")
        texts = self._check(texts)
        if not self.has_token_probs:
            raise ModelPackageError(f"{self.package_dir}: this package's graph has no per-token output (packages "
                                    "before 0.4.1, or mean-pooled ones): export it again for spans")
        if not texts:
            return np.zeros((0, len(self.categories)), dtype=np.float32), []
        windows = encode_windows(self.tokenizer, texts, max_windows=self.max_windows, normalize=self.normalize,
                                 sentence_segments=self.sentence_segments, offsets=True)
        names = ["probs", "token_probs"] + (["span_probs"] if self.span_categories else [])
        probs = np.empty((len(windows.ids), len(self.categories)), dtype=np.float32)
        token_probs: list[np.ndarray] = [None] * len(windows.ids)  # type: ignore[list-item]
        span_probs: list[np.ndarray | None] = [None] * len(windows.ids)
        for index in length_sorted_batches(windows, self.batch_size, self.max_batch_tokens):
            ids, mask = pad_batch(windows, index)
            feeds = {"input_ids": ids, "attention_mask": mask}
            out = self.session.run(names, {k: v for k, v in feeds.items() if k in self._input_names})
            probs[index] = out[0]
            for row, w in enumerate(index):
                n = len(windows.ids[w])
                token_probs[w] = out[1][row, :n]
                if self.span_categories:
                    span_probs[w] = out[2][row, :n]
        scores = max_over_windows(probs, windows.owner, len(texts))
        flagged = scores >= self.review_thresholds
        head = np.array([c in self.span_categories for c in self.categories])
        found: list[list[Span]] = [[] for _ in texts]
        for w, owner in enumerate(windows.owner):
            text, ranges = texts[owner], windows.char_ranges[w]
            if mode == ALL:
                asked, threshold = (np.flatnonzero(head) if w < windows.n_text_windows else []), self.span_threshold_all
            else:
                asked, threshold = np.flatnonzero(flagged[owner] & head), self.span_threshold
            for c in asked:
                name = self.categories[c]
                k = self.span_categories.index(name)
                for a, b, p in spans_from_token_probs(text, ranges, span_probs[w][:, k], threshold):
                    found[owner].append(Span(a, b, name, round(p, 6), SPAN_HEAD))
        for owner in range(len(texts)):
            for c in np.flatnonzero(flagged[owner]):
                name = self.categories[c]
                if any(s.category == name for s in found[owner]):
                    continue
                found[owner] += self._category_evidence(texts[owner], windows, token_probs, owner, c)
        return scores, [merge_spans(s) for s in found]

    def _category_evidence(self, text: str, windows, token_probs: list[np.ndarray], owner: int, c: int) -> list[Span]:
        """The tokens whose own calibrated score reaches category c's review threshold; if only special tokens
        do, the whole window or sentence that scored highest."""
        name, threshold = self.categories[c], float(self.review_thresholds[c])
        out: list[Span] = []
        best, best_score = -1, -1.0
        for w in np.flatnonzero(windows.owner == owner):
            ranges, p = windows.char_ranges[w], token_probs[w][:, c]
            for a, b, score in spans_from_token_probs(text, ranges, p, threshold):
                out.append(Span(a, b, name, round(score, 6), CATEGORY_TOKENS))
            if p.max() > best_score:
                best, best_score = w, float(p.max())
        if not out and best >= 0:
            real = windows.char_ranges[best][windows.char_ranges[best][:, 1] > 0]
            if len(real):
                out.append(Span(int(real[:, 0].min()), int(real[:, 1].max()), name, round(best_score, 6), SEGMENT))
        return out

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

    def moderate(self, text_or_texts: str | Sequence[str], spans: bool | str = False) -> ModerationResult | list[ModerationResult]:
        """One result for a string; a list of results, in input order, for a list of strings.
        spans=True (or "flagged") also fills `result.spans` (character offsets into each text as passed) for
        the flagged categories; spans="all" adds the span head's marks in its categories even when they are
        not flagged (docs/spans.md)."""
        single = isinstance(text_or_texts, str)
        texts = [text_or_texts] if single else text_or_texts
        if not isinstance(texts, (list, tuple)):
            raise InputError(f"expected a string or a list of strings, got {type(text_or_texts).__name__}")
        try:
            mode = span_mode(spans)
        except ValueError as e:
            raise InputError(str(e)) from None
        if mode:
            scores, found = self.score_with_spans(texts, mode)
            results = self.results_from_scores(scores)
            for r, s in zip(results, found):
                r.spans = s
        else:
            results = self.results_from_scores(self.score(texts))
        return results[0] if single else results

    __call__ = moderate
