"""Train supervised recipes (side by side on one GPU, or one at a time on a CPU) and compare them with a
control before any is exported.

On the two-core CPU one recipe costs an hour (plus 25 minutes of spans and export), so recipe questions
were answered one candidate per session. On a GPU a recipe takes minutes, so this script trains a
*control* (the shipped recipe, retrained here: same hardware, same fp16 start, same noise) beside
variants, all at once, and scores each one with its torch weights on

  validation  per-category AUPRC (the split that picks the epoch and the calibration),
  gate        per-category AUPRC on the gate split (what promotion is decided on; never the test split),
  behaviour   the CheckList suite (moderation/behavioural.py) at review thresholds tuned on validation,
  held-out    for recipes that leave sources out: AUPRC on every item of those sources.

It then applies the selection rule written in benchmarks/results/training/<plan> *before* the run and
writes the chosen variant's weights back in fp16 parts (the device returns at most 16 MiB per file).
Nothing here ships: the chosen checkpoint still goes through spans, export, the paired gate against the
production package and the test benchmarks on the CPU machine (docs/training.md, "Shipping checklist").

    # on a GPU host (datasets and base weights carried in, see docs/training.md):
    python scripts/recipe_sweep.py run --work /tmp/recipes --out $OUT
    # here, afterwards:
    python scripts/recipe_sweep.py assemble /work/.device/.../files --to runs/sft-gpu
    # on a CPU, one recipe at a time, the control being an existing checkpoint of the shipped recipe:
    python scripts/recipe_sweep.py one spam_misinfo_selfharm --work runs/recipes --device cpu
    python scripts/recipe_sweep.py evaluate runs/sft-v6 --as control --work runs/recipes --device cpu
    python scripts/recipe_sweep.py choose --work runs/recipes --out runs/recipes/report.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.generalization import HELDOUT_SOURCES as HELDOUT  # noqa: E402  (the generalization benchmark's three)
from benchmarks.generalization import ORIGINAL_SOURCES, auprc_table  # noqa: E402

PART_BYTES = 15 * 2**20


@dataclass(frozen=True)
class Recipe:
    name: str
    families: tuple[str, ...] = ()  # from moderation/training/template_candidates.py, appended in this order
    self_harm_frames: bool = False
    exclude: tuple[str, ...] = ()
    epochs: int = 2
    candidate: bool = True  # False: trained for a measurement only (control, held-out)
    seed: int = 0  # the training seed (head init, batch order, dropout); the data splits never change with it
    original_cap: int | None = None  # per-epoch cap for the ten original sources (others keep 4,000)
    edos_scoped: bool = False  # EDOS not-sexist *training* posts naming another group: hate unknown, not negative


SPAM_MISINFO = ("spam_schemes", "spam_look_alikes", "misinformation_claims", "true_statements")
VEILED = ("threat_veiled_more", "veiled_more_look_alikes")
RECIPES = {r.name: r for r in [
    Recipe("control", candidate=False),
    # the control again with another training seed: how far the suite and the gate move between two runs of
    # one recipe, which is what a candidate's gain must beat (plan recipe-sweep-2026-12-01c)
    Recipe("control_seed1", candidate=False, seed=1),
    Recipe("spam_only", SPAM_MISINFO[:2]),  # the one family pair that gained in both CPU runs (2026-11-30, 12-01)
    Recipe("spam_only_seed1", SPAM_MISINFO[:2], seed=1),  # its second seed (MIN_SEEDS)
    Recipe("spam_misinfo", SPAM_MISINFO),
    Recipe("spam_misinfo_selfharm", SPAM_MISINFO, self_harm_frames=True),
    Recipe("all_candidate_families", SPAM_MISINFO + VEILED, self_harm_frames=True),
    Recipe("heldout_control", exclude=HELDOUT, candidate=False),
    # spam_only without the held-out sources: do the spam templates lift the YouTube held-out row?
    Recipe("heldout_spam_only", SPAM_MISINFO[:2], exclude=HELDOUT, candidate=False),
    # the ten original sources seen as often per epoch as 0.3.0 saw them (8,000): does exposure, not the new
    # sources' labels, explain the in-domain fall on Davidson hate and the misinformation sources (plan 2026-12-02b)?
    Recipe("original_8000", original_cap=8000),
    Recipe("original_8000_seed1", original_cap=8000, seed=1),
    # EDOS raters judged sexism only; its not-sexist posts that name another group ("Islam is satanic") taught
    # "not hate" (benchmarks.md, "What pulls BPSN down"); plan 2026-12-02c
    Recipe("edos_scoped", edos_scoped=True),
    Recipe("edos_scoped_seed1", edos_scoped=True, seed=1),
]}


def scope_edos_hate(examples):
    """EDOS training posts its raters called not sexist, that name a group other than women, lose their hate
    label (unknown, masked in the loss): the raters judged sexism, not hate against that group. Validation, gate
    and test keep the source's labels, so a run stays comparable with the controls."""
    from dataclasses import replace

    from benchmarks.generalization import groups_of

    out = []
    for e in examples:
        if (e.source == "edos_sexism" and e.split == "train" and e.labels.get("hate") is not None
                and e.labels["hate"] < 0.5 and groups_of(e.text, ()) - {"women"}):
            e = replace(e, labels={**e.labels, "hate": None})
        out.append(e)
    return out


# ---------------------------------------------------------------- one recipe (a subprocess)


def apply_templates(recipe: Recipe) -> None:
    from moderation.training import template_candidates as extra
    from moderation.training import templates

    for name in recipe.families:
        templates.FAMILIES[name] = extra.FAMILIES[name]
    if recipe.self_harm_frames:
        labels, frames, slots = templates.FAMILIES["self_harm_plans"]
        templates.FAMILIES["self_harm_plans"] = (labels, frames + extra.SELF_HARM_FRAMES, {**slots, **extra.SELF_HARM_SLOTS})


class TorchModerator:
    """Just enough of `Moderator` for the behavioural suite: flagged = score >= the review threshold."""

    def __init__(self, model, review: list[float]):
        self.model, self.review = model, review

    def moderate(self, texts):
        from types import SimpleNamespace

        probs = self.model.predict_proba(list(texts), batch_size=256)
        cats = self.model.categories
        return [SimpleNamespace(scores={c: float(p[i]) for i, c in enumerate(cats)},
                                categories={c: bool(p[i] >= self.review[i]) for i, c in enumerate(cats)}) for p in probs]


def run_one(recipe: Recipe, work: Path, device: str = "cuda", max_steps: int | None = None, every: int = 1) -> None:
    import torch

    from moderation.taxonomy import load_taxonomy
    from moderation.training.data import load_examples
    from moderation.training.sft import SFTConfig, train_from_datasets
    from moderation.training.training_set import TrainingSetConfig

    torch.set_num_threads(2)
    apply_templates(recipe)
    out = work / recipe.name
    tax = load_taxonomy()
    examples = load_examples(taxonomy=tax, seed=0)[::every]  # every > 1: smoke runs only
    if recipe.edos_scoped:
        examples = scope_edos_hate(examples)
    tcfg = TrainingSetConfig(exclude_sources=recipe.exclude)
    caps = tuple((s, recipe.original_cap) for s in ORIGINAL_SOURCES) if recipe.original_cap else ()
    cfg = SFTConfig(epochs=recipe.epochs, max_per_source=4000, source_caps=caps, seed=recipe.seed, checkpoint_every=1000,
                    max_steps=max_steps, bf16="off")  # fp32 like the CPU runs (0.5.1 trained on AVX2 cores, without bf16)
    started = time.time()
    summary = train_from_datasets(out / "ckpt", examples, tax.names, tcfg, cfg, device=device, log=lambda m: print(f"[{recipe.name}] {m}", flush=True))
    if summary.get("interrupted"):  # no finished model to measure; the saved state resumes with the same command
        raise SystemExit(f"[{recipe.name}] interrupted before the end: not measured")
    measure(recipe, out / "ckpt", examples, out, device, summary, time.time() - started)


def measure(recipe: Recipe, ckpt: Path, examples, out: Path, device: str, summary: dict, train_s: float | None) -> None:
    """validation, gate, suite (and held-out sources) of one trained checkpoint -> out/result.json"""
    import numpy as np

    from benchmarks.generalization import identity_bias
    from moderation.behavioural import cases, run_suite
    from moderation.taxonomy import load_taxonomy
    from moderation.training.data import label_matrix
    from moderation.training.evaluate import tune_thresholds
    from moderation.training.policy import PolicyModel

    started = time.time()
    tax = load_taxonomy()
    cats = tax.names
    model = PolicyModel.load(ckpt).to(device).eval()
    kept = [e for e in examples if e.source not in recipe.exclude]
    validation = [e for e in kept if e.split == "validation"]
    gate = [e for e in kept if e.split == "gate"]
    p_val = model.predict_proba([e.text for e in validation], batch_size=256)
    p_gate = model.predict_proba([e.text for e in gate], batch_size=256)
    y, m = label_matrix(validation, cats)
    thresholds = tune_thresholds(p_val, y, m, tax)
    result = {"recipe": recipe.__dict__, "checkpoint": str(ckpt), "train_seconds": None if train_s is None else round(train_s, 1), "best_epoch": summary.get("best_epoch"),
              "best_val_macro_auprc": summary.get("best_val_macro_auprc"), "history": summary.get("history"),
              "validation": auprc_table(p_val, validation, cats),
              "gate": auprc_table(p_gate, gate, cats),
              "review_thresholds": dict(zip(cats, [round(float(t), 4) for t in thresholds.review]))}
    # On validation and gate together (no test item): the original sources one by one (pooled AUPRC mixes ranking
    # within a source with score levels across sources: scripts/in_domain_breakdown.py), and the identity-bias
    # measures of the hate category (scripts/bias_breakdown.py)
    both, p_both = validation + gate, np.concatenate([p_val, p_gate])
    orig = [i for i, e in enumerate(both) if e.source in ORIGINAL_SOURCES]
    result["original_sources"] = {s: auprc_table(p_both[[i for i in orig if both[i].source == s]],
                                                 [both[i] for i in orig if both[i].source == s], cats)
                                  for s in ORIGINAL_SOURCES if any(both[i].source == s for i in orig)}
    result["original_sources"]["all"] = auprc_table(p_both[orig], [both[i] for i in orig], cats)
    hate = [i for i, e in enumerate(both) if e.labels["hate"] is not None]
    bias = identity_bias(p_both[hate], [both[i] for i in hate], cats.index("hate"))
    result["identity_bias_validation_gate"] = {"bpsn_generalized_mean": bias["generalized_mean"]["bpsn_auc"],
                                               "min_bpsn": bias["min_bpsn"],
                                               "bpsn": {g: r["bpsn_auc"] for g, r in bias["groups"].items()}}
    suite = run_suite(TorchModerator(model, thresholds.review), cases())
    result["behavioural"] = {k: suite[k] for k in ("n", "passed", "pass_rate", "min_capability_pass_rate", "capabilities")}
    if recipe.exclude:
        held = [e for e in examples if e.source in recipe.exclude]
        p_held = model.predict_proba([e.text for e in held], batch_size=256)
        result["heldout"] = {s: auprc_table(p_held[[i for i, e in enumerate(held) if e.source == s]],
                                                  [e for e in held if e.source == s], cats) for s in recipe.exclude}
    result["measure_seconds"] = round(time.time() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(f"[{recipe.name}] measured in {result['measure_seconds']} s: val {result['best_val_macro_auprc']:.4f}, "
          f"suite {suite['passed']}/{suite['n']}", flush=True)


def test_report(runs: list[str], work: Path, device: str = "cpu") -> dict:
    """The generalization benchmark's test-split measures for trained runs' torch weights, *after* a decision:
    BPSN per identity group (hate), harm-preference accuracy on hh-rlhf, AUPRC on the ten original sources'
    test items. Nothing here decides anything; `choose()` never reads it."""
    import torch

    from benchmarks.generalization import HARM, ORIGINAL_SOURCES, hh_pairs, identity_bias, preference_accuracy
    from moderation.taxonomy import load_taxonomy
    from moderation.training.data import load_examples, resolve_data_dir
    from moderation.training.policy import PolicyModel

    torch.set_num_threads(2)
    tax = load_taxonomy()
    cats = tax.names
    data_dir = resolve_data_dir(None)
    test = [e for e in load_examples(data_dir, taxonomy=tax) if e.split == "test"]
    test_hate = [e for e in test if e.labels["hate"] is not None]
    original = [e for e in test if e.source in ORIGINAL_SOURCES]
    pairs = hh_pairs(data_dir)
    harm = [cats.index(c) for c in HARM]
    report = {}
    for name in runs:
        model = PolicyModel.load(work / name / "ckpt").to(device).eval()
        score = lambda texts: model.predict_proba(list(texts), batch_size=256)  # noqa: E731
        bias = identity_bias(score(e.text for e in test_hate), test_hate, cats.index("hate"))
        chosen, rejected = (score(t)[:, harm].max(1) for t in ([c for c, _ in pairs], [r for _, r in pairs]))
        report[name] = {"bpsn_generalized_mean": bias["generalized_mean"]["bpsn_auc"], "min_bpsn": bias["min_bpsn"],
                        "bpsn": {g: r["bpsn_auc"] for g, r in bias["groups"].items()},
                        "harm_preference_accuracy": preference_accuracy(chosen, rejected),
                        "in_domain_original_sources": auprc_table(score(e.text for e in original), original, cats)}
        print(f"[{name}] BPSN mean {report[name]['bpsn_generalized_mean']:.3f}, min {report[name]['min_bpsn']:.3f}, "
              f"harm preference {report[name]['harm_preference_accuracy']:.3f}", flush=True)
    return report


# ---------------------------------------------------------------- the rule and the hand-back


MIN_GATE_POSITIVES = 20  # as the promotion gate (moderation/training/gate.py): fewer cannot carry a veto
# The bars below are the 2026-12-01c plan's, derived from how far the control moved between two training seeds
# (benchmarks/results/training/recipe-sweep-2026-12-01c.json: suite -7, direct threats -4, gate violence -0.044).
# Before it: gate 0.03, suite +4, capability -2, one seed; the verdicts recorded with those bars stand
# (recipe-sweep-2026-12-01.json, -01b.json).
MAX_GATE_DROP = 0.0437
MAX_VALIDATION_DROP = 0.005
MIN_SUITE_GAIN = 14
MAX_CAPABILITY_LOSS = 4  # cases
MIN_SEEDS = 2  # a candidate is trained with this many seeds and every one must pass against every control


def family(name: str) -> str:
    """'spam_only_seed1' -> 'spam_only': the runs of one recipe under different training seeds."""
    return name.split("_seed")[0]


def judge(control: dict, r: dict) -> tuple[bool, str]:
    """One candidate run against one control run."""
    drops = {c: round(control["gate"][c]["auprc"] - v["auprc"], 4) for c, v in r["gate"].items()
             if v["auprc"] is not None and control["gate"][c]["auprc"] is not None
             and v.get("positives", MIN_GATE_POSITIVES) >= MIN_GATE_POSITIVES}
    worst = max(drops, key=drops.get)
    val_drop = control["best_val_macro_auprc"] - r["best_val_macro_auprc"]
    gain = r["behavioural"]["passed"] - control["behavioural"]["passed"]
    caps = r["behavioural"].get("capabilities", {})
    losses = {c: control["behavioural"]["capabilities"][c]["passed"] - v["passed"] for c, v in caps.items()}
    worst_cap = max(losses, key=losses.get) if losses else None
    cap_ok = worst_cap is None or losses[worst_cap] <= MAX_CAPABILITY_LOSS
    ok = drops[worst] <= MAX_GATE_DROP and val_drop <= MAX_VALIDATION_DROP and gain >= MIN_SUITE_GAIN and cap_ok
    return ok, (f"worst gate drop {worst} {drops[worst]:+.4f}, validation macro drop {val_drop:+.4f}, suite {gain:+d}"
                + (f", worst capability {worst_cap} -{losses[worst_cap]}" if worst_cap and losses[worst_cap] > 0 else ""))


def choose(results: dict[str, dict]) -> tuple[str | None, list[str]]:
    """The selection rule, in code. A candidate recipe is eligible when it has MIN_SEEDS runs and every run
    passes `judge` against every control run (`control`, `control_seed1`, ...); among eligible recipes, the one
    whose worst run passes most suite cases wins. Earlier versions (commits d6f9a44, af3f2e3) compared one run
    with one control; a seed alone moved the control's suite by 7 cases, more than their +4 bar."""
    controls = {n: r for n, r in results.items() if family(n) == "control"}
    if not controls:
        return None, ["no control result: nothing can be compared"]
    why, eligible = [], []
    runs: dict[str, list[str]] = {}
    for name in results:
        if name not in RECIPES:  # e.g. a run of a mechanism since removed (the 2026-12-02 soup): kept, never judged
            why.append(f"{name}: not a recipe of this script, not judged")
        elif RECIPES[name].candidate:
            runs.setdefault(family(name), []).append(name)
    for recipe, names in runs.items():
        verdicts = [(judge(c, results[n]), n, cn) for n in names for cn, c in controls.items()]
        ok = len(names) >= MIN_SEEDS and all(v[0][0] for v in verdicts)
        why += [f"{n} vs {cn}: {text}" for (_, text), n, cn in verdicts]
        why.append(f"{recipe}: {len(names)} seed(s) of {MIN_SEEDS} -> {'eligible' if ok else 'refused'}")
        if ok:
            worst = min(names, key=lambda n: results[n]["behavioural"]["passed"])
            eligible.append((results[worst]["behavioural"]["passed"], sum(v["auprc"] or 0 for v in results[worst]["gate"].values()), recipe))
    return (max(eligible)[2] if eligible else None), why


SPREAD_FLOORS = {"min_suite_gain": 4, "max_capability_loss": 2, "max_gate_drop": 0.03, "max_validation_drop": 0.005}


def seed_spread(a: dict, b: dict) -> dict:
    """How far two runs of one recipe (two training seeds) differ: suite, per capability, gate categories with
    at least MIN_GATE_POSITIVES positives, validation macro; and the bars the 2026-12-01c plan derives from that
    for the next sweep (benchmarks/results/training/recipe-sweep-2026-12-01c.plan.md)."""
    caps = {c: b["behavioural"]["capabilities"][c]["passed"] - v["passed"] for c, v in a["behavioural"]["capabilities"].items()}
    gate = {c: round(b["gate"][c]["auprc"] - v["auprc"], 4) for c, v in a["gate"].items()
            if v["auprc"] is not None and b["gate"][c]["auprc"] is not None and v.get("positives", 0) >= MIN_GATE_POSITIVES}
    suite = b["behavioural"]["passed"] - a["behavioural"]["passed"]
    validation = round(b["best_val_macro_auprc"] - a["best_val_macro_auprc"], 4)
    largest_cap = max((abs(v) for v in caps.values()), default=0)
    largest_gate = max((abs(v) for v in gate.values()), default=0.0)
    return {"suite": suite, "capabilities": caps, "gate": gate, "validation_macro": validation,
            "capability_cases_moved": sum(abs(v) for v in caps.values()),
            "next_sweep_bars": {"min_suite_gain": max(SPREAD_FLOORS["min_suite_gain"], 2 * abs(suite)),
                                "max_capability_loss": max(SPREAD_FLOORS["max_capability_loss"], largest_cap),
                                "max_gate_drop": max(SPREAD_FLOORS["max_gate_drop"], largest_gate),
                                "max_validation_drop": max(SPREAD_FLOORS["max_validation_drop"], abs(validation)),
                                "two_seeds_per_candidate": abs(suite) >= 4}}


def hand_back(ckpt: Path, out: Path) -> list[str]:
    """fp16 copy of the weights (small tensors, e.g. calibration, stay fp32), cut into parts under 16 MiB."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(ckpt / "model.safetensors"))
    half = {k: (v.half() if v.is_floating_point() and v.numel() > 4096 else v).contiguous() for k, v in state.items()}
    blob = out / "weights.fp16.safetensors"
    save_file(half, str(blob))
    data = blob.read_bytes()
    blob.unlink()
    names = []
    for i in range(0, len(data), PART_BYTES):
        name = f"weights.part{i // PART_BYTES}"
        (out / name).write_bytes(data[i : i + PART_BYTES])
        names.append(name)
    for f in ("policy_config.json", "training_summary.json", "training_set.json"):
        (out / f).write_bytes((ckpt / f).read_bytes())
    return names


def run_all(names: list[str], work: Path, out: Path, extra_args: list[str]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    procs = {n: subprocess.Popen([sys.executable, __file__, "one", n, "--work", str(work), *extra_args]) for n in names}
    results: dict[str, dict] = {}
    report = out / "recipes.json"
    while procs:
        time.sleep(5)
        for n, p in list(procs.items()):
            if p.poll() is None:
                continue
            del procs[n]
            path = work / n / "result.json"
            if p.returncode == 0 and path.is_file():
                results[n] = json.loads(path.read_text())
            else:
                results[n] = {"failed": p.returncode}
            report.write_text(json.dumps({"results": results}, indent=1))  # partial results survive a timeout
    ok = {n: r for n, r in results.items() if "failed" not in r}
    chosen, why = choose(ok)
    import torch

    summary = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "chosen": chosen, "rule": why, "results": results}
    if chosen:
        summary["parts"] = hand_back(work / chosen / "ckpt", out)
    report.write_text(json.dumps(summary, indent=1))
    print(json.dumps({"chosen": chosen, "rule": why}, indent=1))


def assemble(files: Path, to: Path) -> None:
    """Rebuild a policy checkpoint from the parts (weights back to fp32) with the base tokenizer."""
    from safetensors.torch import load_file, save_file

    from moderation.training.policy import base_model_dir

    parts = sorted(files.glob("weights.part*"), key=lambda p: int(p.name.removeprefix("weights.part")))
    if not parts:
        raise SystemExit(f"no weights.part* in {files}")
    to.mkdir(parents=True, exist_ok=True)
    tmp = to / "weights.fp16.safetensors"
    tmp.write_bytes(b"".join(p.read_bytes() for p in parts))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(str(tmp)).items()}
    tmp.unlink()
    save_file(state, str(to / "model.safetensors"))
    for f in ("policy_config.json", "training_summary.json", "training_set.json"):
        (to / f).write_bytes((files / f).read_bytes())
    (to / "tokenizer.json").write_bytes((base_model_dir() / "tokenizer.json").read_bytes())
    print(f"checkpoint written to {to}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--recipes", default=",".join(RECIPES))
    r.add_argument("--work", type=Path, default=Path("/tmp/recipes"))
    r.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/gpu-recipes")))
    o = sub.add_parser("one")
    o.add_argument("name", choices=list(RECIPES))
    o.add_argument("--work", type=Path, required=True)
    for q in (r, o):
        q.add_argument("--device", default="cuda", help="cuda; cpu only to smoke-test this script")
        q.add_argument("--max-steps", type=int, default=None, help="smoke runs only")
        q.add_argument("--every", type=int, default=1, help="keep every Nth example: smoke runs only")
    e = sub.add_parser("evaluate", help="measure an existing checkpoint under a recipe's name (e.g. the shipped one as control)")
    e.add_argument("checkpoint", type=Path)
    e.add_argument("--as", dest="name", choices=list(RECIPES), required=True)
    e.add_argument("--work", type=Path, required=True)
    e.add_argument("--device", default="cpu")
    sp = sub.add_parser("spread", help="how far two runs of one recipe differ (default: control and control_seed1)")
    sp.add_argument("--work", type=Path, required=True)
    sp.add_argument("--out", type=Path, required=True)
    sp.add_argument("--runs", nargs=2, default=["control", "control_seed1"])
    tr = sub.add_parser("test-report", help="test-split generalization measures of runs, reported after a decision")
    tr.add_argument("runs", nargs="+")
    tr.add_argument("--work", type=Path, required=True)
    tr.add_argument("--out", type=Path, required=True)
    tr.add_argument("--device", default="cpu")
    c = sub.add_parser("choose", help="apply the selection rule to the results under --work")
    c.add_argument("--work", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    a = sub.add_parser("assemble")
    a.add_argument("files", type=Path)
    a.add_argument("--to", type=Path, required=True)
    args = p.parse_args()
    if args.cmd == "run":
        names = args.recipes.split(",")
        unknown = [n for n in names if n not in RECIPES]
        if unknown:
            raise SystemExit(f"unknown recipe(s) {unknown}; known: {list(RECIPES)}")
        extra = ["--device", args.device] + (["--max-steps", str(args.max_steps)] if args.max_steps else []) + ["--every", str(args.every)]
        run_all(names, args.work, args.out, extra)
    elif args.cmd == "one":
        run_one(RECIPES[args.name], args.work, args.device, args.max_steps, args.every)
    elif args.cmd == "evaluate":
        from moderation.taxonomy import load_taxonomy
        from moderation.training.data import load_examples

        summary = json.loads((args.checkpoint / "training_summary.json").read_text())
        measure(RECIPES[args.name], args.checkpoint, load_examples(taxonomy=load_taxonomy(), seed=0), args.work / args.name,
                args.device, summary, None)
    elif args.cmd == "test-report":
        args.out.write_text(json.dumps(test_report(args.runs, args.work, args.device), indent=1))
    elif args.cmd == "choose":
        results = {p.parent.name: json.loads(p.read_text()) for p in sorted(args.work.glob("*/result.json"))}
        chosen, why = choose(results)
        args.out.write_text(json.dumps({"chosen": chosen, "rule": why, "results": results}, indent=1))
        print(json.dumps({"chosen": chosen, "rule": why}, indent=1))
    elif args.cmd == "spread":
        a, b = (json.loads((args.work / n / "result.json").read_text()) for n in args.runs)
        spread = seed_spread(a, b)
        args.out.write_text(json.dumps({"runs": args.runs, "spread": spread, "results": dict(zip(args.runs, (a, b)))}, indent=1))
        print(json.dumps(spread, indent=1))
    else:
        assemble(args.files, args.to)


if __name__ == "__main__":
    main()
