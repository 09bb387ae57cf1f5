"""Span quality on SemEval-2021 Task 5 (toxic spans) and what spans cost, through the public API.

    .venv/bin/python benchmarks/spans.py [--model models/default] [--baseline runs/pkg-v4] [--repeats 5] [--card]

Quality: every post of the official test file `semeval2021_tsd_test.csv` (2,000 posts) goes through
`Moderator.moderate(texts, spans=True)`; a post's predicted offsets are the characters of its toxic, hate and
violence spans (the categories the task's span types map to), and its score is the task's per-post F1 (empty gold and empty
prediction score 1). The mean over posts is the task's metric. The same on the trial file (the validation
set that chose the span head's epoch and threshold) for reference. No test post reaches training, validation
or threshold tuning (tests/test_data.py checks it).

One caveat, measured rather than hidden: the 0.4.x encoders were trained before the test posts were reserved,
so they saw about 70% of them with their post-level labels (never their spans); encoders trained since (0.5.0
on) saw none. `subsets` splits the F1 by the post's split under the old rule: `unseen` posts were in no
training set of any component of any version.

Cost: the same texts (test-split texts at their real lengths, seed 0) scored by `--baseline` (the package
before spans) with `score`, by `--model` with `score`, and by `--model` with spans; runs interleaved,
`--repeats` times, medians and ranges reported. Results: benchmarks/results/spans.json; `--card` also writes
the "Spans" section of the measured package's card.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moderation.runtime import Moderator  # noqa: E402
from moderation.spans import char_f1  # noqa: E402
from moderation.training.spans import SPAN_CATEGORIES  # noqa: E402
from moderation.training.data import (  # noqa: E402
    load_examples,
    normalise_for_dedup,
    resolve_data_dir,
    semeval_span_test,
    semeval_spans,
    split_of,
)


def predicted_offsets(mod: Moderator, texts: list[str], batch: int = 64, mode: str = "flagged") -> tuple[list[set[int]], list[list[dict]]]:
    chars, spans = [], []
    for i in range(0, len(texts), batch):
        for r in mod.moderate(texts[i : i + batch], spans=mode):
            found = set()
            for s in r.spans:
                if s.category in SPAN_CATEGORIES:
                    found.update(range(s.start, s.end))
            chars.append(found)
            spans.append([s.to_dict() for s in r.spans])
    return chars, spans


def f1_report(pred: list[set[int]], gold: list[set[int]]) -> dict:
    scores = [char_f1(p, g) for p, g in zip(pred, gold)]
    empty_gold = [s for s, g in zip(scores, gold) if not g]
    both = [(p, g) for p, g in zip(pred, gold) if p and g]
    return {"n": len(scores), "f1": float(np.mean(scores)) if scores else None,
            # where both are non-empty: are the spans too wide (low precision) or too narrow (low recall)?
            "char_precision": float(np.mean([len(p & g) / len(p) for p, g in both])) if both else None,
            "char_recall": float(np.mean([len(p & g) / len(g) for p, g in both])) if both else None,
            "posts_with_gold_but_no_prediction": sum(1 for p, g in zip(pred, gold) if g and not p),
            "f1_posts_with_gold_spans": float(np.mean([s for s, g in zip(scores, gold) if g])) if len(empty_gold) < len(scores) else None,
            "empty_gold_posts": len(empty_gold),
            "empty_gold_correctly_empty": float(np.mean(empty_gold)) if empty_gold else None}


def identity_audit(mod: Moderator, texts: list[str], spans: list[list[dict]]) -> dict:
    """Where spans mislead: a span that is only an identity word points at who is talked about, not at an
    attack. Counted on the test posts' spans, and on the behavioural suite's benign identity statements."""
    from moderation.behavioural import ADJ, IDENTITY_FRAMES, PLURAL

    words = {w.lower() for w in (*ADJ, *PLURAL)} | {w.lower().split()[0] for w in PLURAL}
    only_identity = {}
    for text, row in zip(texts, spans):
        for s in row:
            piece = text[s["start"] : s["end"]].strip(" .,!?\"'").lower()
            key = s["category"]
            total, hits = only_identity.get(key, (0, 0))
            only_identity[key] = (total + 1, hits + (piece in words))
    benign = [f.format(p=p) for f in IDENTITY_FRAMES if "{a}" not in f for p in PLURAL]
    results = mod.moderate(benign, spans=True)
    flagged = [(t, r) for t, r in zip(benign, results) if r.flagged]
    return {
        "test_spans_that_are_only_an_identity_word": {c: {"spans": t, "identity_only": h} for c, (t, h) in only_identity.items()},
        "benign_identity_statements": len(benign), "benign_identity_statements_flagged": len(flagged),
        "flagged_examples": [{"text": t, "spans": [(t[s.start:s.end], s.category, s.source) for s in r.spans]}
                             for t, r in flagged[:10]],
    }


def quality(mod: Moderator, root: Path) -> dict:
    test = semeval_span_test(root)
    texts, gold = [t for t, _ in test], [set(g) for _, g in test]
    started = time.time()
    pred, spans = predicted_offsets(mod, texts)
    report = {"test": f1_report(pred, gold), "seconds": round(time.time() - started, 1)}
    old_split = [split_of(normalise_for_dedup(t) or t) for t in texts]
    report["subsets"] = {
        "unseen (validation, gate or test under the old rule)": f1_report(
            [p for p, s in zip(pred, old_split) if s != "train"], [g for g, s in zip(gold, old_split) if s != "train"]),
        "encoder saw the post's label (old train split)": f1_report(
            [p for p, s in zip(pred, old_split) if s == "train"], [g for g, s in zip(gold, old_split) if s == "train"]),
    }
    by_source: dict[str, int] = {}
    for row in spans:
        for s in row:
            by_source[s["source"]] = by_source.get(s["source"], 0) + 1
    report["spans_by_source"] = by_source
    report["identity_audit"] = identity_audit(mod, texts, spans)
    trial = semeval_spans(root, "trial")
    tpred, _ = predicted_offsets(mod, [t for t, _ in trial])
    report["trial"] = f1_report(tpred, [set(g) for _, g in trial])
    report["examples"] = [{"text": t[:300], "gold": sorted(g)[:60], "spans": s}
                          for t, g, s in list(zip(texts, gold, spans))[:25]]
    # spans="all": the span head's marks whether or not the classifier flags the post (SemEval's posts were all
    # chosen as toxic, so the task itself does not gate on a classifier); its own threshold, tuned on trial
    apred, _ = predicted_offsets(mod, texts, mode="all")
    tapred, _ = predicted_offsets(mod, [t for t, _ in trial], mode="all")
    report["all_mode"] = {
        "threshold": mod.span_threshold_all, "test": f1_report(apred, gold),
        "unseen": f1_report([p for p, s in zip(apred, old_split) if s != "train"], [g for g, s in zip(gold, old_split) if s != "train"]),
        "trial": f1_report(tapred, [set(g) for _, g in trial])}
    return report


def cost(model: Path, baseline: Path | None, root: Path, n: int, repeats: int, threads: int | None) -> dict:
    examples = [e for e in load_examples(root) if e.split == "test"]
    rng = np.random.default_rng(0)
    texts = [examples[i].text for i in rng.choice(len(examples), min(n, len(examples)), replace=False)]
    runs = {"with_spans": Moderator.load(model, threads=threads), "without_spans": Moderator.load(model, threads=threads),
            "with_all_spans": Moderator.load(model, threads=threads)}
    if baseline is not None:
        runs["before_spans_package"] = Moderator.load(baseline, threads=threads)
    calls = {"with_spans": lambda m: m.moderate(texts, spans=True), "without_spans": lambda m: m.score(texts),
             "with_all_spans": lambda m: m.moderate(texts, spans="all"),
             "before_spans_package": lambda m: m.score(texts)}
    warm = {"with_spans": lambda m: m.moderate(texts[:200], spans=True), "with_all_spans": lambda m: m.moderate(texts[:200], spans="all")}
    for name, mod in runs.items():
        warm.get(name, lambda m: m.score(texts[:200]))(mod)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(repeats):
        for name, mod in runs.items():
            started = time.perf_counter()
            calls[name](mod)
            times[name].append(time.perf_counter() - started)
            print(f"  repeat {r + 1}/{repeats} {name}: {len(texts) / times[name][-1]:.0f} texts/s", flush=True)
    rate = {k: [len(texts) / t for t in v] for k, v in times.items()}
    out = {"n_texts": len(texts), "repeats": repeats,
           "texts_per_second": {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in rate.items()}}
    med = {k: v["median"] for k, v in out["texts_per_second"].items()}
    out["ratio_with_spans_to_without"] = med["with_spans"] / med["without_spans"]
    out["ratio_with_all_spans_to_without"] = med["with_all_spans"] / med["without_spans"]
    if baseline is not None:
        out["ratio_without_spans_to_before_spans_package"] = med["without_spans"] / med["before_spans_package"]
    return out


def card_section(report: dict, manifest_spans: dict) -> str:
    """The card's "Spans" section, written from the measurement (never by hand)."""
    q = report["quality"]
    unseen = next(v for k, v in q["subsets"].items() if k.startswith("unseen"))
    audit = q["identity_audit"]
    cats = ", ".join(manifest_spans["categories"])
    lines = [
        "`moderate(text, spans=True)` returns, for each flagged category, the character ranges its flag rests on "
        f"(docs/spans.md). {cats} spans come from a span head trained on the toxic_spans raters' spans (CC0 1.0) on "
        "the frozen encoder; the other categories' from the classification head's own per-token scores. The span "
        f"threshold ({manifest_spans['threshold']}) was tuned on the SemEval-2021 trial posts through this runtime.", "",
        "| SemEval-2021 Task 5 (character F1) | F1 |", "|---|---|",
        f"| official test, {q['test']['n']:,} posts | {q['test']['f1']:.3f} |",
        f"| of which the {unseen['n']} posts no component of any version ever saw | {unseen['f1']:.3f} |",
        f"| trial ({q['trial']['n']} posts; tuned on) | {q['trial']['f1']:.3f} |",
        f"| `spans=\"all\"` (the head's marks, flagged or not; threshold {q['all_mode']['threshold']}): official test | "
        f"{q['all_mode']['test']['f1']:.3f} |",
        f"| `spans=\"all\"`: trial (tuned on) | {q['all_mode']['trial']['f1']:.3f} |", "",
        ("Below" if q["test"]["f1"] < 0.70 else "At or above") + " the 0.70 target (the task's best system: 0.708). "
        f"{q['test']['posts_with_gold_but_no_prediction']} "
        "test posts with gold spans get none with `spans=True`: it gives spans only for flagged categories, and those "
        f"posts are not flagged (`spans=\"all\"` leaves {q['all_mode']['test']['posts_with_gold_but_no_prediction']}). Spans mislead where the scores do: {audit['benign_identity_statements_flagged']} of "
        f"{audit['benign_identity_statements']} benign identity statements are flagged, and their spans point at the "
        "identity word. Reproduce: `" + report["command"].replace("python ", ".venv/bin/python ", 1) + "`.",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "models" / "default"))
    p.add_argument("--baseline", default=None, help="package before spans, for the no-slower check")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--n", type=int, default=2000, help="texts for the cost runs")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--skip-cost", action="store_true")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "spans.json"))
    p.add_argument("--card", action="store_true", help="write the Spans section of --model's card (re-signs its manifest)")
    args = p.parse_args()
    root = resolve_data_dir(args.data_dir)
    mod = Moderator.load(args.model, threads=args.threads)
    print(f"SemEval-2021 Task 5 through Moderator.moderate(spans=True), model {mod.version}…", flush=True)
    report = {"model": mod.version, "command": "python " + " ".join(sys.argv), "quality": quality(mod, root)}
    q = report["quality"]
    print(f"test F1 {q['test']['f1']:.4f} (n={q['test']['n']}); trial F1 {q['trial']['f1']:.4f}", flush=True)
    print(f"spans=\"all\": test F1 {q['all_mode']['test']['f1']:.4f}; trial F1 {q['all_mode']['trial']['f1']:.4f}", flush=True)
    for name, r in q["subsets"].items():
        print(f"  {name}: F1 {r['f1']:.4f} (n={r['n']})")
    if not args.skip_cost:
        report["cost"] = cost(Path(args.model), Path(args.baseline) if args.baseline else None, root, args.n,
                              args.repeats, args.threads)
        print(json.dumps(report["cost"], indent=2))
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    if args.card:
        from moderation.package import read_manifest
        from moderation.training.export import update_card_section

        update_card_section(args.model, "Spans (benchmarks/spans.py)",
                            card_section(report, read_manifest(Path(args.model))["spans"]))
        print(f"wrote the Spans section of {args.model}/card.md")


if __name__ == "__main__":
    main()
