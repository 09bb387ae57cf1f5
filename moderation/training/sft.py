"""Step 1 of the loop: supervised fine-tuning of the policy on soft labels.

Loss: masked, soft-label binary cross-entropy. Unknown labels (the source never judged that category)
are masked out; rare categories get a positive weight sqrt(neg/pos), capped, so a head with 150
positives among 40k examples still learns. Validation every epoch; the best epoch (macro AUPRC) is
kept; early stopping after `patience` epochs without improvement. After training, each category is
calibrated on validation data (Platt scaling, p = sigmoid(z / T + b), against labels binarised at 0.5 --
the same positives the thresholds and the utility count; a temperature alone, fitted to soft labels, left
hate's mean validation probability at 3.6x its positive rate).

Checkpoints are safetensors. `out_dir/state/` holds everything needed to resume (weights, optimizer,
position in the epoch), written every `checkpoint_every` steps and on Ctrl-C.
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from moderation.errors import ConfigError, check_config
from moderation.package import atomic_replace, atomic_write_text
from moderation.training.data import Example, label_matrix
from moderation.training.evaluate import auprc, macro
from moderation.training.policy import PolicyModel, cpu_supports_bf16, set_seed
from moderation.windows import encode_windows, load_tokenizer, pad_batch


@dataclass
class SFTConfig:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5  # full fine-tune; LoRA wants ~10x more
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    train_max_length: int = 128  # training windows; inference uses the policy's max_length with windows
    max_per_source: int | None = 8000  # per epoch: keeps the 20k Davidson tweets from drowning the rest
    source_caps: tuple[tuple[str, int], ...] = ()  # (source, cap) pairs overriding max_per_source for those sources
    pos_weight_cap: float = 10.0
    patience: int = 1
    grad_clip: float = 1.0
    bf16: str = "auto"  # "auto" | "on" | "off"; on a GPU "auto" means on
    checkpoint_every: int = 200
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimizer steps (smoke runs and tests)

    def __post_init__(self):
        check_config(self, positive=("epochs", "batch_size", "lr", "head_lr", "checkpoint_every"),
                     unit=("warmup_fraction",), choices={"bf16": ("auto", "on", "off")})
        bad = [c for c in self.source_caps if len(c) != 2 or not isinstance(c[0], str) or not isinstance(c[1], int) or c[1] < 1]
        if bad:
            raise ConfigError(f"source_caps must be (source, positive int) pairs; got {bad}")


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, pos_weight: torch.Tensor) -> torch.Tensor:
    """Soft-label BCE over known labels only, positives weighted per category."""
    loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


def positive_weights(targets: np.ndarray, mask: np.ndarray, cap: float) -> np.ndarray:
    pos = (targets * mask).sum(0)
    neg = ((1 - targets) * mask).sum(0)
    return np.clip(np.sqrt(neg / np.maximum(pos, 1.0)), 1.0, cap).astype(np.float32)


def _epoch_order(sources: np.ndarray, lengths: np.ndarray, cfg: SFTConfig, epoch: int) -> list[np.ndarray]:
    """Batches for one epoch: capped per source, shuffled, then length-bucketed (less padding)."""
    rng = np.random.default_rng(cfg.seed * 1000 + epoch)
    chosen = []
    caps = dict(cfg.source_caps)
    for s in np.unique(sources):
        idx = np.nonzero(sources == s)[0]
        cap = caps.get(str(s), cfg.max_per_source)
        if cap and len(idx) > cap:
            idx = rng.choice(idx, cap, replace=False)
        chosen.append(idx)
    order = rng.permutation(np.concatenate(chosen))
    chunk = cfg.batch_size * 50
    batches = []
    for i in range(0, len(order), chunk):
        part = order[i : i + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[j : j + cfg.batch_size] for j in range(0, len(part), cfg.batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


# ---------------------------------------------------------------- resumable state (no pickle)


def save_state(path: Path, model: PolicyModel, opt: torch.optim.Optimizer, meta: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    osd = opt.state_dict()
    for idx, st in osd["state"].items():
        for name, v in st.items():
            tensors[f"opt.{idx}.{name}"] = torch.as_tensor(v).detach().cpu().contiguous()
    meta = {**meta, "param_groups": osd["param_groups"]}
    tmp = path / "state.safetensors.tmp"
    save_file(tensors, str(tmp))
    atomic_replace(tmp, path / "state.safetensors")
    atomic_write_text(path / "meta.json", json.dumps(meta))


def load_state(path: Path, model: PolicyModel, opt: torch.optim.Optimizer) -> dict:
    tensors = load_file(str(path / "state.safetensors"))
    meta = json.loads((path / "meta.json").read_text())
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    weights.setdefault("calibration_bias", model.calibration_bias)  # states saved before Platt calibration
    model.load_state_dict(weights)
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    return meta


# ---------------------------------------------------------------- calibration


def fit_platt(logits: np.ndarray, targets: np.ndarray, mask: np.ndarray, steps: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Per-category (log T, b) minimising validation BCE of sigmoid(z / T + b) against binarised labels.

    A category with fewer than 5 known positives keeps T = 1, b = 0: two numbers fitted to a handful of
    items would only memorise them."""
    z = torch.tensor(logits, dtype=torch.float32)
    y = torch.tensor((targets >= 0.5).astype(np.float32))
    m = torch.tensor(mask, dtype=torch.float32)
    enough = ((y * m).sum(0) >= 5) & (((1 - y) * m).sum(0) >= 5)
    log_t = torch.zeros(z.shape[1], requires_grad=True)
    bias = torch.zeros(z.shape[1], requires_grad=True)
    opt = torch.optim.Adam([log_t, bias], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = (F.binary_cross_entropy_with_logits(z / log_t.exp() + bias, y, reduction="none") * m).sum(0) / m.sum(0).clamp(min=1)
        loss.sum().backward()
        opt.step()
        with torch.no_grad():
            log_t.clamp_(-2.0, 2.0)
            bias.clamp_(-8.0, 8.0)
    with torch.no_grad():
        log_t[~enough] = 0.0
        bias[~enough] = 0.0
    return log_t.detach().numpy(), bias.detach().numpy()


def calibrate(model: PolicyModel, validation: list[Example]) -> dict:
    """Fit and set the model's Platt calibration on validation data; returns what was fitted."""
    y_val, m_val = label_matrix(validation, model.categories)
    log_t, bias = fit_platt(validation_logits(model, [e.text for e in validation]), y_val, m_val)
    model.log_temperature.copy_(torch.tensor(log_t))
    model.calibration_bias.copy_(torch.tensor(bias))
    return {c: {"temperature": round(float(np.exp(t)), 3), "bias": round(float(b), 3)}
            for c, t, b in zip(model.categories, log_t, bias)}


# ---------------------------------------------------------------- training


def resolve_device(name: str) -> torch.device:
    """"cpu", "cuda" or "auto" (cuda when a GPU is visible). Asking for cuda without one is an error, not a
    silent hour-long CPU run."""
    if name not in ("cpu", "cuda", "auto"):
        raise ValueError(f"device must be cpu, cuda or auto, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no GPU (torch.cuda.is_available() is False)")
    return torch.device(name)


class _Interrupt:
    """Turns the first Ctrl-C / SIGTERM into a flag, so the loop saves a checkpoint and stops cleanly."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        if self.requested:  # second Ctrl-C: the user means it
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def validation_logits(model: PolicyModel, texts: list[str], batch_size: int = 128) -> np.ndarray:
    """Uncalibrated logits max-pooled over windows (calibration is fitted on these)."""
    saved = model.log_temperature.clone(), model.calibration_bias.clone()
    model.log_temperature.zero_()
    model.calibration_bias.zero_()
    try:
        model.eval()
        with torch.no_grad():
            return model.text_logits(texts, batch_size=batch_size).cpu().numpy()
    finally:
        model.log_temperature.copy_(saved[0])
        model.calibration_bias.copy_(saved[1])


def train_sft(model: PolicyModel, train: list[Example], validation: list[Example], out_dir: str | Path,
              cfg: SFTConfig = SFTConfig(), resume: bool = True, log=print) -> dict:
    """Train `model` in place; the best epoch, calibrated, is saved to `out_dir` and returned as a summary."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)
    cats = model.categories
    y_train, m_train = label_matrix(train, cats)
    y_val, m_val = label_matrix(validation, cats)
    tok = load_tokenizer(model.tokenizer_path, cfg.train_max_length, stride=min(32, cfg.train_max_length // 4))
    windows = encode_windows(tok, [e.text for e in train], max_windows=1)  # training sees the first window
    lengths = np.array([len(w) for w in windows.ids])
    sources = np.array([e.source for e in train])
    device = model.device
    pos_weight = torch.tensor(positive_weights(y_train, m_train, cfg.pos_weight_cap), device=device)

    head_params = list(model.head.parameters())
    enc_params = [p for p in model.encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([
        {"params": enc_params, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
        {"params": head_params, "lr": cfg.head_lr, "weight_decay": 0.0},
    ])
    steps_per_epoch = len(_epoch_order(sources, lengths, cfg, 0))
    total = cfg.epochs * steps_per_epoch if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * steps_per_epoch)
    warmup = max(1, int(cfg.warmup_fraction * total))
    base_lrs = [g["lr"] for g in opt.param_groups]

    def set_lr(step: int) -> None:
        scale = step / warmup if step < warmup else max(0.0, 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * scale

    state_dir = out / "state"
    meta = {"epoch": 0, "batch": 0, "step": 0, "best": -1.0, "best_epoch": -1, "bad_epochs": 0, "history": []}
    if resume and (state_dir / "meta.json").is_file():
        meta = load_state(state_dir, model, opt)
        log(f"resuming from {state_dir}: epoch {meta['epoch'] + 1}, batch {meta['batch']}, step {meta['step']}")
    auto_bf16 = device.type == "cuda" or (device.type == "cpu" and cpu_supports_bf16())
    use_bf16 = cfg.bf16 == "on" or (cfg.bf16 == "auto" and auto_bf16)
    log(f"training {len(train)} examples ({steps_per_epoch} steps/epoch, {total} steps), {len(validation)} validation "
        f"on {device}; bf16 autocast: {use_bf16}; pos_weight: {dict(zip(cats, pos_weight.cpu().numpy().round(2).tolist()))}")

    started = time.time()
    stopped_early = interrupted = False
    with _Interrupt() as stop:
        for epoch in range(meta["epoch"], cfg.epochs):
            batches = _epoch_order(sources, lengths, cfg, epoch)
            model.train()
            bar = tqdm(range(meta["batch"], len(batches)), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                       initial=meta["batch"], total=len(batches))
            running = None
            for b in bar:
                index = batches[b]
                ids, mask = (torch.from_numpy(a).to(device) for a in pad_batch(windows, index))
                set_lr(meta["step"])
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    logits = model.logits(ids, mask)
                loss = masked_bce(logits.float(), torch.from_numpy(y_train[index]).to(device),
                                  torch.from_numpy(m_train[index]).to(device), pos_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                meta["step"] += 1
                meta["batch"] = b + 1
                running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
                bar.set_postfix(loss=f"{running:.4f}")
                if meta["step"] % cfg.checkpoint_every == 0 or stop.requested:
                    save_state(state_dir, model, opt, meta)
                if stop.requested or (cfg.max_steps is not None and meta["step"] >= cfg.max_steps):
                    break
            bar.close()
            if stop.requested:
                interrupted = True
                log(f"interrupted: state saved to {state_dir}; run the same command again to resume")
                break
            logits_val = validation_logits(model, [e.text for e in validation])
            score = macro(auprc(logits_val, y_val, m_val))
            meta["history"].append({"epoch": epoch + 1, "train_loss": running, "val_macro_auprc": score,
                                    "elapsed_s": round(time.time() - started, 1)})
            log(f"epoch {epoch + 1}: train loss {running:.4f}, validation macro AUPRC {score:.4f}")
            if score > meta["best"]:
                meta.update(best=score, best_epoch=epoch + 1, bad_epochs=0)
                model.save(out / "best_uncalibrated")
            else:
                meta["bad_epochs"] += 1
            meta["epoch"], meta["batch"] = epoch + 1, 0
            save_state(state_dir, model, opt, meta)
            if meta["bad_epochs"] > cfg.patience:
                stopped_early = True
                log(f"early stop: no improvement for {meta['bad_epochs']} epochs")
                break
            if cfg.max_steps is not None and meta["step"] >= cfg.max_steps:
                break
    summary = {"config": asdict(cfg), "history": meta["history"], "best_epoch": meta["best_epoch"],
               "best_val_macro_auprc": meta["best"], "stopped_early": stopped_early, "interrupted": interrupted,
               "train_seconds": round(time.time() - started, 1)}
    if interrupted or meta["best_epoch"] < 0:
        return summary
    best = PolicyModel.load(out / "best_uncalibrated").to(device)
    summary["calibration"] = calibrate(best, validation)
    best.save(out)
    atomic_write_text(out / "training_summary.json", json.dumps(summary, indent=2))
    log(f"saved calibrated policy to {out} (best epoch {meta['best_epoch']}, validation macro AUPRC {meta['best']:.4f})")
    return summary


def train_from_datasets(out: Path, examples: list[Example], categories: list[str], tcfg, cfg: SFTConfig, finetune: str = "full",
                        resume: bool = True, device: str = "cpu", log=print) -> dict:
    """`moderate train sft`: build the training set (training_set.py), record how, and train from the base model."""
    from moderation.training.training_set import build_training_set, fingerprint

    train, validation = build_training_set(examples, tcfg)
    set_seed(cfg.seed)
    model = PolicyModel.from_base(categories, finetune=finetune).to(resolve_device(device))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "training_set.json", json.dumps({**asdict(tcfg), "train_examples": len(train),
                                                              "validation_examples": len(validation),
                                                              "train_fingerprint": fingerprint(train),
                                                              "validation_fingerprint": fingerprint(validation)}, indent=2))
    return train_sft(model, train, validation, out, cfg, resume=resume, log=log)
