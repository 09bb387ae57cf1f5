"""Does learning from reviewers pay on sources the model already knows, and does RL beat fine-tuning?

    .venv/bin/python benchmarks/rlhf_lift.py [--policy CHECKPOINT] [--budgets 100 300 1000] [--seeds 0 1 2]

Setting. The supervised policy (`--policy`; by default the torch policy inside the shipped package,
models/default/policy.safetensors, rebuilt into runs/shipped-policy) is reviewed on texts it never trained
on: validation-split items from the three datasets that keep per-annotator labels (Davidson, ConvAbuse,
Toxic Spans). Simulated reviewers (labeling/simulate.py) judge only the categories their source's
annotators judged, with one real annotator's labels per review and 5% slips; nothing comes from the model.
They rank the proposals by `--rank-rule`, a rule on their own labels. They review `budget` items chosen by
uncertainty from a seed-dependent half of that pool, each with K=4 proposals, as `moderate loop` would
push them. The same code builds the judgments as the Label Studio path, minus the server. 20% of the
reviewed items are held out (reward-model accuracy, epoch and step selection).

Variants at equal budget, each as `moderate loop` runs it today:
  (a) the supervised policy alone
  (b) + LoRA fine-tuning on the reviewers' corrections, masked to the judged categories, held by the KL
      leash on three train-split texts of the other sources per correction (`--method sft`, the default)
  (c) + reward model (Bradley-Terry on the rankings and corrections) + RL (LoRA, KL to the start policy,
      the same leash on the other sources' texts) on the reviewed texts plus `--unlabelled` unreviewed
      texts of the same pool (their labels unused) (`--method rl`)
  (d) (b), then (c) with (b) as the KL reference (`--method sft+rl`)
  cheap baselines the feedback must beat (moderation/training/baselines.py):
  (e) the supervised policy with per-category thresholds re-tuned for utility on the validation labels
  (f) the supervised policy recalibrated per category (Platt, pulled to the identity) on the reviewed items

Metrics on the test split (first 256-token window of each text, all variants alike): macro AUPRC over the
seven categories, and reviewer utility per item (taxonomy costs, decisions at the cost-optimal
thresholds) on all test texts and on the reviewed sources' test texts. Results go to JSON after every
cell (re-running with the same --out resumes), a PNG of the curves, and a Markdown table.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REVIEWED_SOURCES = ("davidson_hate_offensive", "convabuse", "toxic_spans")
VARIANTS = {"a": "supervised", "b": "+ SFT on corrections", "c": "+ reward model + RL", "d": "SFT, then RL",
            "e": "supervised, thresholds re-tuned on validation (no reviews)", "f": "+ recalibration on the reviewed items"}
PER_BUDGET = ("b", "c", "d", "f")  # (a) and (e) use no reviews: measured once


# What the simulated reviewers may say; results from another simulation are never mixed with these.
SIMULATION = "annotator labels only, unjudged categories masked (labeling/simulate.py)"

def scores(policy, texts: list[str]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.sigmoid(policy.eval().text_logits(texts, batch_size=128, max_windows=1)).numpy()


def measure(probs, y, m, src_mask, tax, thresholds=None) -> dict:
    """Macro AUPRC and utility per item, at the cost-optimal thresholds unless `thresholds` are given."""
    from moderation.training.evaluate import auprc, macro, utility_at

    t = tax.cost_optimal_thresholds() if thresholds is None else thresholds
    per = auprc(probs, y, m)
    return {"macro_auprc": macro(per), "auprc": dict(zip(tax.names, per)), "utility": utility_at(probs, y, m, t, tax),
            "utility_reviewed_sources": utility_at(probs[src_mask], y[src_mask], m[src_mask], t, tax)}


def evaluate(policy, test, y, m, src_mask, tax) -> dict:
    return measure(scores(policy, [e.text for e in test]), y, m, src_mask, tax)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", type=Path, default=None,
                    help="supervised policy checkpoint (default: the shipped package's policy, rebuilt into runs/shipped-policy)")
    ap.add_argument("--thresholds-from", type=Path, default=ROOT / "models/default", help="package whose review thresholds pick the greedy proposal")
    ap.add_argument("--budgets", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--unlabelled", type=int, default=1000, help="extra unreviewed validation texts in the RL pool")
    ap.add_argument("--rl-steps", type=int, default=100)
    ap.add_argument("--kl-beta", type=float, default=0.05)
    ap.add_argument("--rl-lr", type=float, default=1e-4)
    ap.add_argument("--test-size", type=int, default=0, help="random test subset (0 = the whole test split)")
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--rank-rule", choices=("agreement", "misses_first"), default="agreement",
                    help="how simulated reviewers order proposals from their own labels")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/rlhf_lift.json")
    ap.add_argument("--render-only", action="store_true", help="recompute the summary, table and plot from the cells in --out")
    args = ap.parse_args()
    if args.render_only:
        results = json.loads(args.out.read_text())
        if "test_items_reviewed_sources" not in results["setup"]:  # runs before it was recorded: count again
            from moderation.taxonomy import load_taxonomy
            from moderation.training.data import load_examples

            test = [e for e in load_examples(None, taxonomy=load_taxonomy(None), seed=0) if e.split == "test"]
            assert len(test) == results["setup"]["test_items"], "the test split changed since these cells were measured"
            results["setup"]["test_items_reviewed_sources"] = sum(e.source in REVIEWED_SOURCES for e in test)
        summarise(results, args.out.with_suffix(".md"), args.out.with_suffix(".png"))
        args.out.write_text(json.dumps(results, indent=2))
        return

    import torch

    from labeling.simulate import offline_judgments
    from moderation.training.baselines import Recalibration, utility_thresholds
    from moderation.proposals import proposals_from_logits
    from moderation.taxonomy import load_taxonomy
    from moderation.training.data import label_matrix, load_examples
    from moderation.training.improve import (
        ImproveConfig,
        consensus,
        embedding_table,
        fit_reward,
        rl_on_feedback,
        sft_on_corrections,
        split_items,
    )
    from moderation.training.policy import PolicyModel
    from moderation.training.loop import training_replay
    from moderation.training.rl import RLConfig

    torch.set_num_threads(max(1, torch.get_num_threads()))
    started = time.time()
    tax = load_taxonomy(None)
    examples = load_examples(None, taxonomy=tax, seed=0)
    val = [e for e in examples if e.split == "validation"]
    test = [e for e in examples if e.split == "test"]
    if args.test_size and args.test_size < len(test):
        rng = np.random.default_rng(12345)
        test = [test[i] for i in sorted(rng.choice(len(test), args.test_size, replace=False))]
    pool = [e for e in val if e.annotators and e.source in REVIEWED_SOURCES]
    y_test, m_test = label_matrix(test, tax.names)
    src_mask = np.array([e.source in REVIEWED_SOURCES for e in test])
    thr = json.loads((args.thresholds_from / "thresholds.json").read_text())
    review_thr = np.array([thr[c]["review"] for c in tax.names])

    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if results.get("cells") and results.get("setup", {}).get("simulation") != SIMULATION:
        # Cells measured with the old simulated reviewers (unjudged categories filled from the model's own
        # proposal) must not be mixed with honest ones: keep them aside and start again.
        kept = args.out.with_suffix(".model-filled.json")
        args.out.rename(kept)
        print(f"{args.out} was measured with model-filled simulated reviewers; kept as {kept}, starting afresh", flush=True)
        results = {}
    results.setdefault("cells", {})
    commands = results.get("setup", {}).get("commands_run", [])
    results["setup"] = {"simulation": SIMULATION, "policy": str(args.policy), "pool_items": len(pool), "test_items": len(test),
                        "test_items_reviewed_sources": int(src_mask.sum()),
                        "unlabelled": args.unlabelled, "rl_steps": args.rl_steps, "kl_beta": args.kl_beta, "rl_lr": args.rl_lr,
                        "noise": args.noise, "rank_rule": args.rank_rule, "reviewed_sources": list(REVIEWED_SOURCES),
                        "leash": "the loop's: training_replay(exclude_sources=reviewed sources), 3 leashed texts per correction; RL leash_texts",
                        "commands_run": commands + ["benchmarks/rlhf_lift.py " + " ".join(sys.argv[1:])]}

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))

    if args.policy is None:
        from moderation.training.policy_delta import checkpoint_from_package

        args.policy = checkpoint_from_package(ROOT / "models/default", ROOT / "runs/shipped-policy")
        results["setup"]["policy"] = f"models/default ({json.loads((ROOT / 'models/default/manifest.json').read_text())['version']})"
    base = PolicyModel.load(args.policy).eval()
    # the loop's leash: train-split texts of every source the reviews did not come from
    leash = training_replay(examples, 0, exclude_sources=set(REVIEWED_SOURCES))
    print(f"pool {len(pool)} reviewable validation items; test {len(test)}; scoring the pool…", flush=True)
    with torch.no_grad():
        pool_logits = base.text_logits([e.text for e in pool], batch_size=128, max_windows=1).numpy()
    base_test = scores(base, [e.text for e in test])
    if "a" not in results:
        results["a"] = measure(base_test, y_test, m_test, src_mask, tax)
        save()
    print(f"(a) supervised: {json.dumps(results['a'])}", flush=True)
    if "e" in args.variants and "e" not in results:
        y_val, m_val = label_matrix(val, tax.names)
        thresholds = utility_thresholds(scores(base, [e.text for e in val]), y_val, m_val, tax)
        results["e"] = {**measure(base_test, y_test, m_test, src_mask, tax, thresholds), "thresholds": thresholds.tolist()}
        save()
        print(f"(e) thresholds re-tuned on validation: {json.dumps(results['e'])}", flush=True)

    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        half = rng.permutation(len(pool))[: len(pool) // 2]
        p_half = 1 / (1 + np.exp(-pool_logits[half]))
        margin = np.abs(np.log(p_half / (1 - p_half)) - np.log(review_thr / (1 - review_thr))).min(1)
        ranked = half[np.argsort(margin, kind="stable")]  # uncertainty: nearest a review threshold first
        for budget in args.budgets:
            key = f"budget={budget},seed={seed}"
            cell = results["cells"].get(key, {})
            if all(v in cell for v in args.variants if v in PER_BUDGET):
                print(f"{key}: done already", flush=True)
                continue
            t0 = time.time()
            chosen = ranked[:budget]
            # RL's unlabelled texts: the same traffic the reviewers saw, never their labels (not the test split)
            rest = np.setdiff1d(np.arange(len(pool)), chosen)
            extra = [pool[i].text for i in np.random.default_rng(seed + 1000 * budget).choice(rest, min(args.unlabelled, len(rest)), replace=False)]
            props = [[p.labels for p in ps] for ps in proposals_from_logits(pool_logits[chosen], 4, thresholds=review_thr, seed=seed)]
            judgments = offline_judgments([pool[i] for i in chosen], props, tax, noise=args.noise, seed=seed, rule=args.rank_rule)
            cfg = ImproveConfig(seed=seed, rl=RLConfig(steps=args.rl_steps, kl_beta=args.kl_beta, lr=args.rl_lr))
            train_js, held_js = split_items(judgments, cfg.holdout, seed)
            tr_texts, tr_gold, tr_judged = consensus(train_js, len(tax))
            held_texts, held_gold, held_judged = consensus(held_js, len(tax))
            rl_pool = tr_texts + extra
            embed = embedding_table(base, rl_pool + held_texts)
            reward, rm_report = fit_reward(base, train_js, held_js, tax, cfg, embeddings=embed, log=lambda m: None)
            cell["reward_model"] = rm_report
            print(f"{key}: reward model {json.dumps(rm_report)}", flush=True)
            if "f" in args.variants:
                calibration = Recalibration.fit(scores(base, tr_texts), tr_gold, tr_judged)
                cell["f"] = {**measure(calibration(base_test), y_test, m_test, src_mask, tax),
                             "scale": calibration.scale.tolist(), "shift": calibration.shift.tolist()}
                print(f"{key}: (f) {json.dumps(cell['f'])}", flush=True)
            sft_model = None
            if "b" in args.variants or "d" in args.variants:
                sft_model = copy.deepcopy(base)
                cell["b_training"] = sft_on_corrections(sft_model, tr_texts, tr_gold, tr_judged, held_texts, held_gold, held_judged, tax, cfg,
                                                         log=lambda m: None, replay=leash)
                if "b" in args.variants:
                    cell["b"] = evaluate(sft_model, test, y_test, m_test, src_mask, tax)
                    print(f"{key}: (b) {json.dumps(cell['b'])}", flush=True)
            for v, start in (("c", base), ("d", sft_model)):
                if v not in args.variants:
                    continue
                policy = copy.deepcopy(start)
                hist = rl_on_feedback(policy, reward, embed, rl_pool, held_texts, held_gold, held_judged, tax, cfg, log=lambda m: None,
                                      leash_texts=leash.texts)
                cell[f"{v}_training"] = {"best_step": hist.best_step, "stopped_for_reward_hacking": hist.stopped_for_reward_hacking,
                                         "rows": hist.rows}
                cell[v] = evaluate(policy, test, y_test, m_test, src_mask, tax)
                print(f"{key}: ({v}) {json.dumps(cell[v])}", flush=True)
            cell["seconds"] = round(time.time() - t0, 1)
            results["cells"][key] = cell
            save()
    results["seconds_total_last_run"] = round(time.time() - started, 1)
    summarise(results, args.out.with_suffix(".md"), args.out.with_suffix(".png"))
    save()  # after summarise: the JSON's summary covers every seed in the cells, as the table does


def summarise(results: dict, md_path: Path, png_path: Path) -> None:
    """Mean ± std over seeds per budget and variant; a Markdown table and a PNG of the curves."""
    rows = {}
    for key, cell in results["cells"].items():
        budget = int(key.split(",")[0].split("=")[1])
        for v in PER_BUDGET:
            if v in cell:
                rows.setdefault((budget, v), []).append(cell[v])
        rows.setdefault((budget, "rm"), []).append(cell["reward_model"])
    budgets = sorted({b for b, _ in rows})
    a = results["a"]

    n_all, n_rev = results["setup"]["test_items"], results["setup"].get("test_items_reviewed_sources")

    def other(r: dict) -> float:
        """Utility per item on the test texts of the sources nobody reviewed (from the two recorded means)."""
        return (r["utility"] * n_all - r["utility_reviewed_sources"] * n_rev) / (n_all - n_rev) if n_rev else float("nan")

    def ms(vals):
        vals = [x for x in vals if x is not None and x == x]
        return (float(np.mean(vals)), float(np.std(vals)), len(vals)) if vals else (float("nan"), float("nan"), 0)

    lines = ["| budget | variant | utility (all test) | utility (reviewed sources) | utility (other sources) | macro AUPRC | seeds |",
             "|---|---|---|---|---|---|---|"]
    for v in ("a", "e"):
        if v in results:
            r = results[v]
            lines.append(f"| 0 | ({v}) {VARIANTS[v]} | {r['utility']:.4f} | {r['utility_reviewed_sources']:.4f} | {other(r):.4f} | {r['macro_auprc']:.4f} | — |")
    summary = {}
    for b in budgets:
        for v in PER_BUDGET:
            cells = rows.get((b, v), [])
            if not cells:
                continue
            u, ur, ma = ms([c["utility"] for c in cells]), ms([c["utility_reviewed_sources"] for c in cells]), ms([c["macro_auprc"] for c in cells])
            uo = ms([other(c) for c in cells])
            summary[f"{b}/{v}"] = {"utility": u, "utility_reviewed_sources": ur, "utility_other_sources": uo, "macro_auprc": ma}
            lines.append(f"| {b} | ({v}) {VARIANTS[v]} | {u[0]:.4f} ± {u[1]:.4f} | {ur[0]:.4f} ± {ur[1]:.4f} | {uo[0]:.4f} ± {uo[1]:.4f} | "
                         f"{ma[0]:.4f} ± {ma[1]:.4f} | {u[2]} |")
    lines += ["", "| budget | reward model held-out pairwise accuracy | its untrained start | Hamming-to-greedy baseline | policy log-prob baseline |",
              "|---|---|---|---|---|"]
    for b in budgets:
        rm = rows.get((b, "rm"), [])
        acc, start, ham, lp = (ms([r.get(k) for r in rm]) for k in ("accuracy_reward_model", "accuracy_reward_model_start",
                                                                     "accuracy_hamming_to_greedy", "accuracy_policy_log_prob"))
        lines.append(f"| {b} | {acc[0]:.3f} ± {acc[1]:.3f} | {start[0]:.3f} ± {start[1]:.3f} | {ham[0]:.3f} | {lp[0]:.3f} |")
    # Per seed, each variant against (a) and against the best cheap baseline of that seed: the seeds disagree by
    # more than the means differ, so only a gap that holds seed by seed means much.
    lines += ["", "Per seed, utility change against (a): reviewed sources / other sources.", "",
              "| budget, seed | " + " | ".join(f"({v}) − (a)" for v in PER_BUDGET) + " | best learned − best of (e), (f), reviewed sources |",
              "|---|" + "---|" * (len(PER_BUDGET) + 1)]
    paired = {}
    for key, cell in sorted(results["cells"].items(), key=lambda kv: (int(kv[0].split(",")[0].split("=")[1]), kv[0])):
        rev = {v: cell[v]["utility_reviewed_sources"] - a["utility_reviewed_sources"] for v in PER_BUDGET if v in cell}
        oth = {v: other(cell[v]) - other(a) for v in PER_BUDGET if v in cell}
        cheap = [results["e"]["utility_reviewed_sources"]] if "e" in results else []
        cheap += [cell["f"]["utility_reviewed_sources"]] if "f" in cell else []
        learned = [cell[v]["utility_reviewed_sources"] for v in ("b", "c", "d") if v in cell]
        margin = max(learned) - max(cheap) if learned and cheap else float("nan")
        paired[key] = {**{f"{v}_minus_a_reviewed": d for v, d in rev.items()}, **{f"{v}_minus_a_other": d for v, d in oth.items()},
                       "best_learned_minus_best_cheap_reviewed": margin}
        lines.append(f"| {key} | " + " | ".join(f"{rev[v]:+.4f} / {oth[v]:+.4f}" if v in rev else "—" for v in PER_BUDGET)
                     + f" | {margin:+.4f} |")
    results["paired"] = paired
    results["summary"] = summary
    md_path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    def value(r: dict, metric: str) -> float:
        return other(r) if metric == "utility_other_sources" else r[metric]

    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for ax, metric, title in zip(axes, ("utility", "utility_reviewed_sources", "utility_other_sources", "macro_auprc"),
                                 ("utility per item, all test", "utility per item, reviewed sources",
                                  "utility per item, other sources", "macro AUPRC")):
        ax.axhline(value(a, metric), color="grey", linestyle="--", label="(a) supervised")
        if "e" in results:
            ax.axhline(value(results["e"], metric), color="black", linestyle=":", label="(e) thresholds re-tuned")
        for v in PER_BUDGET:
            pts = [(b, summary[f"{b}/{v}"][metric]) for b in budgets if f"{b}/{v}" in summary]
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1][0] for p in pts], yerr=[p[1][1] for p in pts], marker="o", capsize=3,
                            label=f"({v}) {VARIANTS[v]}")
        ax.set_xscale("log")
        ax.set_xlabel("reviewed items")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)


if __name__ == "__main__":
    main()
