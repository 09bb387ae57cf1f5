"""Adaptation to a new platform: a model that never saw source X meets X's content, and X's reviewers teach it.

    .venv/bin/python benchmarks/adaptation.py --no-x runs/sft-heldout --oracle runs/sft-v4 \\
        [--targets olid_v1 youtube_spam_collection] [--budgets 100 300 1000] [--seeds 0 1 2]

The case a trust-and-safety team has: a supervised model trained on other people's data, their own
platform's traffic, and a review budget. Setting:

  no-X model   `--no-x`, a supervised checkpoint whose `training_set.json` excludes every target source
               (the generalization benchmark's held-out-sources model serves: one training, two uses)
  oracle       `--oracle`, a checkpoint trained with X's training labels (the shipped supervised model)
  pool         X's train split (never the validation, gate or test split)
  reviewers    simulated from X's real annotations (labeling/simulate.py): sources that release one
               adjudicated label per item replay that label, judged categories only, 5% slips; each ranks
               K=4 proposals by its own labels (`--rank-rule`, not the reward model's utility)
  selection    `budget` items chosen by the review queue's strategy (labeling.queue.select): uncertainty
               (nearest a review threshold) or random, both reported

Variants at equal budget (the same reviewed items):
  thr     no-X model with per-category thresholds re-tuned for utility on the reviewed items
  recal   no-X model recalibrated per category (Platt, pulled to the identity) on the reviewed items
  sft     LoRA fine-tuning on the reviewers' corrected label sets (the loop's `--method sft`)
  sft_replay  the same, with as many training-split examples of the no-X model's own sources replayed in
          every batch (improve.Replay)
  sft_replay_cal  sft_replay, then its Platt calibration re-fitted on 3,000 validation examples of those
          sources plus the reviewed items (improve.recalibrate), as supervised training ends
  sft_leash  SFT on corrections with a KL leash to the no-X model on the same replayed texts (every
          category; improve.Replay(leash=True)) instead of their labels
  sft_leash_ll  sft_leash with its epoch picked by held-out log-loss instead of held-out utility
          (ImproveConfig.sft_select)
  sft_leash3  sft_leash_ll with three leashed texts per correction instead of one
  (sft_near, sft_near_w3, sft_head, sft_platform, sft_logit3: measured, then removed; RETIRED_VARIANTS)
  rl      reward model (Bradley-Terry on rankings and corrections) + RL (LoRA, KL leash; `--method rl`)
  rl_leash  the same RL, also held by a KL to the no-X model on the replayed texts (rl.py `leash_texts`)
The first two cannot change a category's ranking, so AUPRC gains over them are what reviews taught.

Metrics (first 256-token window, all variants alike):
  on X      reviewer utility per item on the categories X's annotators judged (cost-optimal decisions;
            `thr` at its own thresholds), their macro AUPRC, and the share of the no-X -> oracle gap closed
  elsewhere every other source's test split (at most `--others-per-source` items each): per source and
            category, a paired bootstrap of the AUPRC change against the no-X model (gate.paired_gate);
            "falls" lists the source/categories that fell by more than 0.01 beyond their 90% bound
  gate      the promotion gate (gate.py) on the whole gate split, candidate vs the no-X model: `gate` with
            the whole-split utility rule, `gate_focus` with X's gate items as the reviewed platform (better
            there, not worse elsewhere; what `moderate loop` runs)
Results go to JSON after every cell (re-running with the same --out resumes), with a Markdown table and a
PNG of the budget curves next to it.
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import replace
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = {"thr": "thresholds re-tuned on the reviewed items", "recal": "recalibrated on the reviewed items",
            "sft": "SFT on corrections", "sft_replay": "SFT on corrections + replay of the training data",
            "sft_replay_cal": "the same, recalibrated on validation + the reviewed items",
            "sft_leash": "SFT on corrections + a KL leash to the start on replayed texts",
            "sft_leash_ll": "the same, epoch picked by held-out log-loss",
            "sft_leash3": "the same, three leashed texts per correction", "rl": "reward model + RL",
            "rl_leash": "reward model + RL with the leash on replayed texts"}
# Measured and removed with their mechanism (improve.Replay.near / .weight, commit 243c389; ImproveConfig.sft_scope,
# commit febff12; platform tokens, commit 7aa7119; the logit leash, Replay.space, commit 05fb800): their recorded cells are still summarised, but this version
# cannot run them. docs/loop.md.
RETIRED_VARIANTS = {"sft_near": "sft_leash3, half the leashed texts the corrections' nearest neighbours",
                    "sft_near_w3": "sft_near, the leash weighted three times the corrections",
                    "sft_head": "sft_leash3 training only the judged categories' head rows (lr 1e-2, 6 epochs)",
                    "sft_platform": "sft_leash3 with X's texts tagged by a platform token (reviews, held-out, X's test and gate items)",
                    "sft_logit3": "sft_leash3 with the leash on logits (squared distance, clipped at +-6) instead of probabilities"}
# Derived, not trained (--route): X's texts scored by the named variant's candidate, all others by the no-X model
# (`moderate loop --platform`); the cheap baselines get the same routing, so routing alone is no advantage
ROUTED = {"thr_routed": "thr", "recal_routed": "recal", "sft_leash3_routed": "sft_leash3"}
REVIEWED_VARIANTS = tuple(VARIANTS) + tuple(ROUTED) + tuple(RETIRED_VARIANTS)
STRATEGIES = ("uncertainty", "random")
SIMULATION = "one real annotator's (or the adjudicated) labels, judged categories only, 5% slips (labeling/simulate.py)"


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def shift_to_thresholds(probs: np.ndarray, thresholds: np.ndarray, cost_optimal: np.ndarray) -> np.ndarray:
    """Re-map each category's scores so that `thresholds` land on the cost-optimal ones: the same decisions
    as cutting at `thresholds`, and the same ranking, in the form every metric and the gate read."""
    return 1 / (1 + np.exp(-(_logit(probs) - _logit(thresholds) + _logit(cost_optimal))))


def scores(policy, texts: list[str]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.sigmoid(policy.eval().text_logits(texts, batch_size=128, max_windows=1)).numpy()


def on_target(probs, y, m, tax) -> dict:
    from moderation.training.evaluate import auprc, macro, utility_at

    per = auprc(probs, y, m)
    return {"utility": utility_at(probs, y, m, tax.cost_optimal_thresholds(), tax), "macro_auprc": macro(per),
            "auprc": {c: a for c, a in zip(tax.names, per) if a is not None}}


def elsewhere(probs, base, y, m, sources: np.ndarray, tax) -> dict:
    """Per other source: which categories' AUPRC fell beyond noise against the no-X model."""
    from moderation.training.evaluate import auprc, macro
    from moderation.training.gate import paired_gate

    falls, deltas = [], {}
    for s in sorted(set(sources)):
        k = sources == s
        g = paired_gate(probs[k], base[k], y[k], m[k], tax, seed=0)
        falls += [f"{s}/{r.split(':')[0]}" for r in g.reasons if "AUPRC fell" in r]
        deltas.update({f"{s}/{c}": round(d, 4) for c, d in g.auprc_deltas.items()})
    return {"falls": falls, "auprc_deltas": deltas, "macro_auprc": macro(auprc(probs, y, m))}


def gate_result(cand, prod, y, m, tax, focus=None, focus_sources=()) -> dict:
    from moderation.training.gate import paired_gate
    from moderation.training.registry import annotated_categories

    g = paired_gate(cand, prod, y, m, tax, focus=focus,
                    focus_categories=annotated_categories(focus_sources, tax) if focus is not None else None)
    return {"passed": g.passed, "utility_delta": g.utility_delta, "utility_interval": g.utility_interval, "reasons": g.reasons,
            **({"focus": g.focus} if focus is not None else {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-x", type=Path, default=ROOT / "runs/sft-heldout", help="supervised checkpoint trained without the targets")
    ap.add_argument("--oracle", type=Path, default=ROOT / "runs/sft-v4", help="supervised checkpoint trained with the targets")
    ap.add_argument("--targets", nargs="+", default=["olid_v1", "youtube_spam_collection"])
    ap.add_argument("--budgets", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--others-per-source", type=int, default=300, help="test items per other source (fixed sample)")
    ap.add_argument("--unlabelled", type=int, default=1000, help="unreviewed pool texts added to RL's prompts")
    ap.add_argument("--rl-steps", type=int, default=100)
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--rank-rule", choices=("agreement", "misses_first"), default="agreement")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/adaptation.json")
    ap.add_argument("--render-only", action="store_true", help="recompute the summary, table and plot from --out")
    ap.add_argument("--redo", nargs="*", default=[], choices=list(VARIANTS), help="run these variants again where recorded")
    ap.add_argument("--rejudge", action="store_true",
                    help="recompute every recorded gate verdict from the saved scores (--scores-dir) with the current gate; "
                         "verdicts without saved scores keep theirs under gate_focus_utility_only and lose gate_focus")
    ap.add_argument("--route", action="store_true",
                    help=f"derive the routed variants ({', '.join(ROUTED)}) from the saved scores of the variants they route, "
                         "without retraining: X's items scored by the candidate, every other item by the no-X model")
    ap.add_argument("--scores-dir", type=Path, default=ROOT / "runs/adaptation-scores",
                    help="each candidate's scores (X test, others, gate) as .npy, to re-judge without retraining")
    args = ap.parse_args()
    if args.render_only:
        results = json.loads(args.out.read_text())
        summarise(results, args.out)
        args.out.write_text(json.dumps(results, indent=2))
        return

    import torch

    from labeling.queue import QueueItem, select
    from labeling.simulate import offline_judgments, with_adjudicated_annotator
    from moderation.proposals import proposals_from_logits
    from moderation.taxonomy import load_taxonomy
    from moderation.training.baselines import Recalibration, utility_thresholds
    from moderation.training.data import SOURCE_TABLE, label_matrix, load_examples
    from moderation.training.improve import ImproveConfig, Replay, consensus, recalibrate, embedding_table, fit_reward, rl_on_feedback, sft_on_corrections, split_items
    from moderation.training.policy import PolicyModel
    from moderation.training.rl import RLConfig

    started = time.time()
    excluded = set(json.loads((args.no_x / "training_set.json").read_text()).get("exclude_sources", []))
    oracle_excluded = set(json.loads((args.oracle / "training_set.json").read_text()).get("exclude_sources", []))
    for x in args.targets:
        if x not in excluded:
            sys.exit(f"--no-x {args.no_x} was trained on {x} (its training_set.json excludes only {sorted(excluded)})")
        if x in oracle_excluded:
            sys.exit(f"--oracle {args.oracle} was trained without {x}: it is no oracle for it")

    tax = load_taxonomy(None)
    examples = load_examples(None, taxonomy=tax, seed=0)
    cost_opt = tax.cost_optimal_thresholds()
    rng = np.random.default_rng(12345)
    others = []
    for s in sorted({e.source for e in examples}):
        t = [e for e in examples if e.source == s and e.split == "test"]
        others += [t[i] for i in sorted(rng.choice(len(t), min(len(t), args.others_per_source), replace=False))]
    gate = [e for e in examples if e.split == "gate"]
    src_gate = np.array([e.source for e in gate])
    y_oth, m_oth = label_matrix(others, tax.names)
    y_gate, m_gate = label_matrix(gate, tax.names)
    src_oth = np.array([e.source for e in others])

    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results.setdefault("cells", {})
    results.setdefault("reference", {})
    command = "benchmarks/adaptation.py " + " ".join(sys.argv[1:])
    # every invocation that wrote cells, in order: the cells of one results file come from several runs
    commands_run = results.get("setup", {}).get("commands_run", []) + [command]
    results["setup"] = {"simulation": SIMULATION, "no_x": str(args.no_x), "oracle": str(args.oracle), "targets": args.targets,
                        "others_items": len(others), "gate_items": len(gate), "rl_steps": args.rl_steps, "noise": args.noise,
                        "rank_rule": args.rank_rule, "unlabelled": args.unlabelled, "command": command,
                        "commands_run": commands_run}

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))

    base = PolicyModel.load(args.no_x).eval()
    # Replay for sft_replay: the no-X model's own training sources (never X), a fixed sample
    seen = [e for e in examples if e.split == "train" and e.source not in excluded]
    seen = [seen[i] for i in sorted(np.random.default_rng(7).choice(len(seen), min(20000, len(seen)), replace=False))]
    replay = Replay([e.text for e in seen], *label_matrix(seen, tax.names))
    leash = Replay(replay.texts, replay.targets, replay.mask, leash=True)
    val_seen = [e for e in examples if e.split == "validation" and e.source not in excluded]
    calibration_set = [val_seen[i] for i in sorted(np.random.default_rng(8).choice(len(val_seen), min(3000, len(val_seen)), replace=False))]
    print(f"scoring {len(others)} other-source test items and {len(gate)} gate items with the no-X model…", flush=True)
    base_oth, base_gate = scores(base, [e.text for e in others]), scores(base, [e.text for e in gate])
    oracle_scores = {}
    if args.route:
        route(results, args, base_oth, base_gate, y_oth, m_oth, src_oth, y_gate, m_gate, src_gate, tax)
        summarise(results, args.out)
        save()
        return
    if args.rejudge:
        rejudge(results, args, base_gate, y_gate, m_gate, src_gate, tax, lambda texts: scores(PolicyModel.load(args.oracle).eval(), texts),
                [e.text for e in gate])
        summarise(results, args.out)
        save()
        return

    for x in args.targets:
        judged_cats = [c for c in SOURCE_TABLE[x].labels]
        pool = [with_adjudicated_annotator(e) for e in examples if e.source == x and e.split == "train"]
        pool = [e for e in pool if e.annotators]
        test = [e for e in examples if e.source == x and e.split == "test"]
        y_x, m_x = label_matrix(test, tax.names)
        m_x = m_x * np.array([c in judged_cats for c in tax.names], dtype=m_x.dtype)  # only what X's annotators judged
        keep_oth = src_oth != x
        print(f"[{x}] pool {len(pool)} train items, test {len(test)}, judged {judged_cats}", flush=True)
        with torch.no_grad():
            pool_logits = base.text_logits([e.text for e in pool], batch_size=128, max_windows=1).numpy()
        base_x = scores(base, [e.text for e in test])
        ref = results["reference"].setdefault(x, {})
        if "no_x" not in ref:
            ref["no_x"] = {"target": on_target(base_x, y_x, m_x, tax), "pool_items": len(pool), "test_items": len(test),
                           "judged": judged_cats}
        if "oracle" not in ref or "gate_focus" not in ref["oracle"]:
            if args.oracle not in oracle_scores:
                oracle = PolicyModel.load(args.oracle).eval()
                oracle_scores[args.oracle] = (oracle, scores(oracle, [e.text for e in others]), scores(oracle, [e.text for e in gate]))
            oracle, o_oth, o_gate = oracle_scores[args.oracle]
            ref["oracle"] = {"target": on_target(scores(oracle, [e.text for e in test]), y_x, m_x, tax),
                             "elsewhere": elsewhere(o_oth[keep_oth], base_oth[keep_oth], y_oth[keep_oth], m_oth[keep_oth], src_oth[keep_oth], tax),
                             "gate": gate_result(o_gate, base_gate, y_gate, m_gate, tax),
                             "gate_focus": gate_result(o_gate, base_gate, y_gate, m_gate, tax, focus=src_gate == x, focus_sources=[x])}
            save()
        print(f"[{x}] no-X {json.dumps(ref['no_x']['target'])}\n[{x}] oracle {json.dumps(ref['oracle']['target'])}", flush=True)
        items = [QueueItem(e.id, e.text, 1 / (1 + np.exp(-pool_logits[i])), e.source) for i, e in enumerate(pool)]
        index = {e.id: i for i, e in enumerate(pool)}
        row_of_text = {e.text: i for i, e in enumerate(pool)}

        for seed in args.seeds:
            for strategy in args.strategies:
                for budget in args.budgets:
                    key = f"{x}|{strategy}|{budget}|{seed}"
                    cell = results["cells"].get(key, {})
                    todo = [v for v in args.variants if v not in cell or v in args.redo]
                    if not todo:
                        continue
                    t0 = time.time()
                    chosen = [index[it.item_id] for it in select(items, budget, strategy, cost_opt, seed=seed)]
                    props = [[p.labels for p in ps] for ps in proposals_from_logits(pool_logits[chosen], 4, thresholds=cost_opt, seed=seed)]
                    judgments = offline_judgments([pool[i] for i in chosen], props, tax, noise=args.noise, seed=seed, rule=args.rank_rule)
                    # the first variants were measured with epochs picked by held-out utility; the leash variants
                    # say their own
                    cfg = ImproveConfig(seed=seed, rl=RLConfig(steps=args.rl_steps), sft_select="utility")
                    train_js, held_js = split_items(judgments, cfg.holdout, seed)
                    tr_texts, tr_gold, tr_judged = consensus(train_js, len(tax))
                    held_texts, held_gold, held_judged = consensus(held_js, len(tax))
                    all_texts, all_gold, all_judged = consensus(judgments, len(tax))
                    cell["reviewed"] = {"items": len(judgments), "positives": {c: int(v) for c, v in zip(tax.names, (all_gold * all_judged).sum(0)) if v}}

                    def record(v: str, p_x, p_oth, p_gate, extra=None) -> None:
                        cell[v] = {"target": on_target(p_x, y_x, m_x, tax),
                                   "elsewhere": elsewhere(p_oth[keep_oth], base_oth[keep_oth], y_oth[keep_oth], m_oth[keep_oth], src_oth[keep_oth], tax),
                                   "gate": gate_result(p_gate, base_gate, y_gate, m_gate, tax),
                                   "gate_focus": gate_result(p_gate, base_gate, y_gate, m_gate, tax, focus=src_gate == x, focus_sources=[x]), **(extra or {})}
                        args.scores_dir.mkdir(parents=True, exist_ok=True)
                        np.savez_compressed(args.scores_dir / f"{key.replace('|', '_')}_{v}.npz", x=p_x, others=p_oth, gate=p_gate)
                        results["cells"][key] = cell
                        save()
                        tgt = cell[v]["target"]
                        print(f"{key} {v}: utility {tgt['utility']:.4f} AUPRC {tgt['macro_auprc']:.4f}, falls {cell[v]['elsewhere']['falls']}, "
                              f"gate {'pass' if cell[v]['gate']['passed'] else 'refuse'} ({time.time() - t0:.0f}s)", flush=True)

                    p_reviewed = 1 / (1 + np.exp(-pool_logits[[row_of_text[t] for t in all_texts]]))  # scored already
                    if "thr" in todo:
                        t = utility_thresholds(p_reviewed, all_gold, all_judged, tax)
                        record("thr", *(shift_to_thresholds(p, t, cost_opt) for p in (base_x, base_oth, base_gate)), {"thresholds": t.tolist()})
                    if "recal" in todo:
                        cal = Recalibration.fit(p_reviewed, all_gold, all_judged)
                        record("recal", cal(base_x), cal(base_oth), cal(base_gate), {"scale": cal.scale.tolist(), "shift": cal.shift.tolist()})
                    if "sft" in todo:
                        model = copy.deepcopy(base)
                        hist = sft_on_corrections(model, tr_texts, tr_gold, tr_judged, held_texts, held_gold, held_judged, tax, cfg, log=lambda m: None)
                        record("sft", scores(model, [e.text for e in test]), scores(model, [e.text for e in others]),
                               scores(model, [e.text for e in gate]), {"best_epoch": hist["best_epoch"]})
                        del model
                    for v, selected_on, ratio in (("sft_leash", "utility", 1.0), ("sft_leash_ll", "log_loss", 1.0), ("sft_leash3", "log_loss", 3.0)):
                        if v not in todo:
                            continue
                        model = copy.deepcopy(base)
                        hist = sft_on_corrections(model, tr_texts, tr_gold, tr_judged, held_texts, held_gold, held_judged, tax,
                                                  replace(cfg, sft_select=selected_on), log=lambda m: None,
                                                  replay=replace(leash, ratio=ratio))
                        record(v, scores(model, [e.text for e in test]), scores(model, [e.text for e in others]),
                               scores(model, [e.text for e in gate]), {"best_epoch": hist["best_epoch"]})
                        del model
                    if "sft_replay" in todo or "sft_replay_cal" in todo:
                        model = copy.deepcopy(base)
                        hist = sft_on_corrections(model, tr_texts, tr_gold, tr_judged, held_texts, held_gold, held_judged, tax, cfg,
                                                  log=lambda m: None, replay=replay)
                        if "sft_replay" in todo:
                            record("sft_replay", scores(model, [e.text for e in test]), scores(model, [e.text for e in others]),
                                   scores(model, [e.text for e in gate]), {"best_epoch": hist["best_epoch"]})
                        if "sft_replay_cal" in todo:
                            fitted = recalibrate(model, calibration_set, tr_texts + held_texts, np.r_[tr_gold, held_gold],
                                                 np.r_[tr_judged, held_judged])
                            record("sft_replay_cal", scores(model, [e.text for e in test]), scores(model, [e.text for e in others]),
                                   scores(model, [e.text for e in gate]), {"best_epoch": hist["best_epoch"], "calibration": fitted})
                        del model
                    for v in [v for v in ("rl", "rl_leash") if v in todo]:
                        rest = np.setdiff1d(np.arange(len(pool)), chosen)
                        extra = [pool[i].text for i in np.random.default_rng(seed + 1000 * budget).choice(rest, min(args.unlabelled, len(rest)), replace=False)]
                        embed = embedding_table(base, tr_texts + extra + held_texts)
                        try:
                            reward, rm = fit_reward(base, train_js, held_js, tax, cfg, embeddings=embed, log=lambda m: None)
                        except ValueError as e:  # too few pairs at this budget
                            cell[v] = {"skipped": str(e)}
                            results["cells"][key] = cell
                            save()
                            continue
                        model = copy.deepcopy(base)
                        hist = rl_on_feedback(model, reward, embed, tr_texts + extra, held_texts, held_gold, held_judged, tax, cfg, log=lambda m: None,
                                              leash_texts=replay.texts if v == "rl_leash" else None)
                        record(v, scores(model, [e.text for e in test]), scores(model, [e.text for e in others]),
                               scores(model, [e.text for e in gate]),
                               {"reward_model": rm, "best_step": hist.best_step, "stopped_for_reward_hacking": hist.stopped_for_reward_hacking})
                        del model
                    cell["seconds"] = round(cell.get("seconds", 0) + time.time() - t0, 1)
                    save()
    results["seconds_total_last_run"] = round(time.time() - started, 1)
    summarise(results, args.out)
    save()


def route(results: dict, args, base_oth, base_gate, y_oth, m_oth, src_oth, y_gate, m_gate, src_gate, tax) -> None:
    """A routed candidate scores X's texts with the fine-tuned model and every other text with the model it
    started from, so nothing moves elsewhere by construction; what is left to judge is X and the gate."""
    made = 0
    for key, cell in results["cells"].items():
        x = key.split("|")[0]
        keep_oth = src_oth != x
        for routed, source in ROUTED.items():
            f = args.scores_dir / f"{key.replace('|', '_')}_{source}.npz"
            if source not in cell or "target" not in cell[source] or not f.is_file():
                continue
            saved = np.load(f)
            p_gate = np.where((src_gate == x)[:, None], saved["gate"], base_gate)
            cell[routed] = {"target": cell[source]["target"], "routes": source,
                            "elsewhere": elsewhere(base_oth[keep_oth], base_oth[keep_oth], y_oth[keep_oth], m_oth[keep_oth], src_oth[keep_oth], tax),
                            "gate": gate_result(p_gate, base_gate, y_gate, m_gate, tax),
                            "gate_focus": gate_result(p_gate, base_gate, y_gate, m_gate, tax, focus=src_gate == x, focus_sources=[x])}
            made += 1
    print(f"derived {made} routed candidates from saved scores")


def rejudge(results: dict, args, base_gate, y_gate, m_gate, src_gate, tax, oracle_scorer, gate_texts) -> None:
    """Re-run the gate (both rules) on every candidate whose scores were saved, without retraining. The focused
    rule changed once (it used to ask utility on every category of the platform's items; docs/loop.md), so a
    verdict that cannot be recomputed is kept apart, not mixed with the new ones."""
    o_gate = oracle_scorer(gate_texts)
    for x, ref in results["reference"].items():
        if "oracle" in ref:
            ref["oracle"]["gate"] = gate_result(o_gate, base_gate, y_gate, m_gate, tax)
            ref["oracle"]["gate_focus"] = gate_result(o_gate, base_gate, y_gate, m_gate, tax, focus=src_gate == x, focus_sources=[x])
    redone = kept = 0
    for key, cell in results["cells"].items():
        x = key.split("|")[0]
        for v in [v for v in REVIEWED_VARIANTS if v not in ROUTED]:  # routed ones are re-derived by --route
            if v not in cell or "target" not in cell[v]:
                continue
            f = args.scores_dir / f"{key.replace('|', '_')}_{v}.npz"
            if "gate_focus" in cell[v] and "categories" not in (cell[v]["gate_focus"].get("focus") or {}).get("focus", {}):
                cell[v]["gate_focus_utility_only"] = cell[v].pop("gate_focus")
            if f.is_file():
                p_gate = np.load(f)["gate"]
                cell[v]["gate"] = gate_result(p_gate, base_gate, y_gate, m_gate, tax)
                cell[v]["gate_focus"] = gate_result(p_gate, base_gate, y_gate, m_gate, tax, focus=src_gate == x, focus_sources=[x])
                redone += 1
            else:
                kept += 1
    print(f"re-judged {redone} candidates from their saved scores; {kept} without saved scores keep only their old verdicts")


def _ms(vals) -> list:
    vals = [float(v) for v in vals if v is not None and v == v]
    return [float(np.mean(vals)), float(np.std(vals)), len(vals)] if vals else [float("nan"), float("nan"), 0]


def summarise(results: dict, out: Path) -> None:
    """Mean ± std over seeds per target, strategy, budget and variant; gap closed; a table and a PNG."""
    groups: dict[tuple, list] = {}
    for key, cell in results["cells"].items():
        x, strategy, budget, _seed = key.split("|")
        for v in REVIEWED_VARIANTS:
            if v in cell and "target" in cell[v]:
                groups.setdefault((x, strategy, int(budget), v), []).append(cell[v])
    summary = {}
    lines = ["| target | selection | reviews | variant | utility on X | AUPRC on X | gap closed (utility / AUPRC) | other-source falls | "
             "gate passes (whole split) | gate passes (X focus) | X focus, first rule (utility only) | seeds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for x, ref in results["reference"].items():
        nx, orc = ref["no_x"]["target"], ref.get("oracle", {}).get("target")
        lines.append(f"| {x} | — | 0 | no-X model | {nx['utility']:.4f} | {nx['macro_auprc']:.4f} | 0 / 0 | — | — | — | — | — |")
        if orc:
            falls = len(ref["oracle"]["elsewhere"]["falls"])
            focus = f"{int(ref['oracle']['gate_focus']['passed'])}/1" if "gate_focus" in ref["oracle"] else "—"
            lines.append(f"| {x} | — | all train | oracle | {orc['utility']:.4f} | {orc['macro_auprc']:.4f} | 1 / 1 | {falls} | "
                         f"{int(ref['oracle']['gate']['passed'])}/1 | {focus} | — | — |")
        for (gx, strategy, budget, v), cells in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], REVIEWED_VARIANTS.index(kv[0][3]))):
            if gx != x:
                continue
            u, a = _ms([c["target"]["utility"] for c in cells]), _ms([c["target"]["macro_auprc"] for c in cells])
            gap_u = _ms([(c["target"]["utility"] - nx["utility"]) / (orc["utility"] - nx["utility"]) for c in cells]) if orc else None
            gap_a = _ms([(c["target"]["macro_auprc"] - nx["macro_auprc"]) / (orc["macro_auprc"] - nx["macro_auprc"]) for c in cells]) if orc else None
            falls = _ms([len(c["elsewhere"]["falls"]) for c in cells])
            passes = sum(c["gate"]["passed"] for c in cells)
            focused = [c["gate_focus"]["passed"] for c in cells if "gate_focus" in c]
            first_rule = [c["gate_focus_utility_only"]["passed"] for c in cells if "gate_focus_utility_only" in c]
            summary[f"{x}|{strategy}|{budget}|{v}"] = {"utility": u, "macro_auprc": a, "gap_closed_utility": gap_u, "gap_closed_auprc": gap_a,
                                                        "other_source_falls": falls, "gate_passes": passes,
                                                        "gate_focus_passes": [sum(focused), len(focused)],
                                                        "gate_focus_first_rule_passes": [sum(first_rule), len(first_rule)], "seeds": len(cells)}
            lines.append(f"| {x} | {strategy} | {budget} | {v} | {u[0]:.4f} ± {u[1]:.4f} | {a[0]:.4f} ± {a[1]:.4f} | "
                         f"{gap_u[0]:.2f} / {gap_a[0]:.2f} | {falls[0]:.1f} | {passes}/{len(cells)} | "
                         f"{f'{sum(focused)}/{len(focused)}' if focused else '—'} | "
                         f"{f'{sum(first_rule)}/{len(first_rule)}' if first_rule else '—'} | {len(cells)} |")
    rm_lines = ["", "| target | selection | reviews | reward model held-out accuracy | its untrained start | Hamming to greedy | seeds |",
                "|---|---|---|---|---|---|---|"]
    rms: dict[tuple, list] = {}
    for key, cell in results["cells"].items():
        x, strategy, budget, _ = key.split("|")
        # rl and rl_leash fit the same reward model (same seed, same reviews): one entry per cell
        rm = next((cell[v]["reward_model"] for v in ("rl", "rl_leash") if "reward_model" in cell.get(v, {})), None)
        if rm is not None:
            rms.setdefault((x, strategy, int(budget)), []).append(rm)
    for (x, strategy, budget), r in sorted(rms.items()):
        acc, start, ham = (_ms([d.get(k) for d in r]) for k in ("accuracy_reward_model", "accuracy_reward_model_start", "accuracy_hamming_to_greedy"))
        rm_lines.append(f"| {x} | {strategy} | {budget} | {acc[0]:.3f} ± {acc[1]:.3f} | {start[0]:.3f} ± {start[1]:.3f} | {ham[0]:.3f} | {acc[2]} |")
    # Active learning: does the queue's uncertainty sampling reach random sampling's quality with at most
    # half the reviews? Compared where the budgets allow (uncertainty at b against random at >= 2b).
    al_lines = ["", "| target | variant | uncertainty reviews | random reviews | utility (unc / rand) | AUPRC (unc / rand) | as good with half or fewer |",
                "|---|---|---|---|---|---|---|"]
    active = []
    budgets = sorted({int(k.split("|")[2]) for k in summary})
    for x in results["reference"]:
        for v in VARIANTS:
            for b in budgets:
                for b2 in [b2 for b2 in budgets if b2 >= 2 * b][:1]:
                    u, r = summary.get(f"{x}|uncertainty|{b}|{v}"), summary.get(f"{x}|random|{b2}|{v}")
                    if not u or not r:
                        continue
                    ok = u["utility"][0] >= r["utility"][0] and u["macro_auprc"][0] >= r["macro_auprc"][0]
                    active.append({"target": x, "variant": v, "uncertainty": b, "random": b2, "as_good": ok})
                    al_lines.append(f"| {x} | {v} | {b} | {b2} | {u['utility'][0]:.4f} / {r['utility'][0]:.4f} | "
                                    f"{u['macro_auprc'][0]:.4f} / {r['macro_auprc'][0]:.4f} | {'yes' if ok else 'no'} |")
    results["summary"] = summary
    results["active_learning"] = active
    out.with_suffix(".md").write_text("\n".join(lines + rm_lines + al_lines) + "\n")
    print("\n".join(lines + rm_lines + al_lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    targets = list(results["reference"])
    if not targets:
        return
    fig, axes = plt.subplots(len(targets), 2, figsize=(12, 4 * len(targets)), squeeze=False)
    colours = {v: plt.cm.tab20(i % 20) for i, v in enumerate(REVIEWED_VARIANTS)}
    for row, x in enumerate(targets):
        ref = results["reference"][x]
        for col, metric in enumerate(("utility", "macro_auprc")):
            ax = axes[row][col]
            ax.axhline(ref["no_x"]["target"][metric], color="black", linestyle="--", label="no-X model")
            if "oracle" in ref:
                ax.axhline(ref["oracle"]["target"][metric], color="green", linestyle="--", label="oracle")
            for v in REVIEWED_VARIANTS:
                for strategy, style in (("uncertainty", "-"), ("random", ":")):
                    pts = sorted((int(k.split("|")[2]), s[metric]) for k, s in summary.items()
                                 if k.startswith(f"{x}|{strategy}|") and k.endswith(f"|{v}"))
                    if pts:
                        ax.errorbar([p[0] for p in pts], [p[1][0] for p in pts], yerr=[p[1][1] for p in pts], color=colours[v],
                                    linestyle=style, marker="o", capsize=3, label=f"{v} ({strategy})")
            ax.set_xscale("log")
            ax.set_xlabel("reviewed items of X")
            ax.set_title(f"{x}: {'utility per item' if metric == 'utility' else 'macro AUPRC'} on X's test split")
        axes[row][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100)


if __name__ == "__main__":
    main()
