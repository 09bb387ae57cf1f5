"""Quality against baselines on the same test split.

    .venv/bin/python benchmarks/quality.py [--model models/default] [--out benchmarks/results/quality.json]

Compares, by AUPRC (soft label >= 0.5 is positive; unknown labels left out):
  ours          the model package (ONNX INT8), as users run it
  tfidf_lr      TF-IDF (word 1-2-grams + char 2-5-grams) + logistic regression per category, trained here on
                the same train split with the same masks
  profanity     alt-profanity-check (PyPI), one score used for every category
  hatesonar     hatesonar (PyPI), 1 - P(neither), one score for every category. It was trained on the Davidson
                tweets: its numbers on that source are contaminated (marked in the table).
"unsafe_abuse" = any of toxic/hate/violence/sexual/self_harm; "unsafe_all" = any of the seven categories.
A model's unsafe score is the max over its category scores (the peers' single score as is).
The peers load their own bundled pickles; that is their code on their files, never ours on a user's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moderation.runtime import Moderator  # noqa: E402
from moderation.training.data import label_matrix, load_examples  # noqa: E402
from moderation.training.evaluate import MIN_POSITIVES, binarise, unsafe_target  # noqa: E402

ABUSE = ["toxic", "hate", "violence", "sexual", "self_harm"]
CONTAMINATED = {"hatesonar": {"davidson_hate_offensive"}}


def ap(scores: np.ndarray, y: np.ndarray, known: np.ndarray) -> float | None:
    from sklearn.metrics import average_precision_score

    keep = known > 0
    yy = binarise(y[keep])
    if yy.sum() < MIN_POSITIVES or yy.sum() == len(yy):
        return None
    return float(average_precision_score(yy, scores[keep]))


def tfidf_scores(train, test, categories, seed: int) -> np.ndarray:
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=200_000, sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=3, max_features=300_000, sublinear_tf=True)
    tr_text, te_text = [e.text[:5000] for e in train], [e.text[:5000] for e in test]
    x_tr = hstack([words.fit_transform(tr_text), chars.fit_transform(tr_text)]).tocsr()
    x_te = hstack([words.transform(te_text), chars.transform(te_text)]).tocsr()
    y, m = label_matrix(train, categories)
    out = np.zeros((len(test), len(categories)))
    for j, c in enumerate(categories):
        keep = m[:, j] > 0
        yy = binarise(y[keep, j])
        if yy.sum() < 2:
            continue
        clf = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced", random_state=seed)
        clf.fit(x_tr[keep], yy)
        out[:, j] = clf.predict_proba(x_te)[:, 1]
        print(f"  tfidf_lr {c}: trained on {int(keep.sum())} examples", file=sys.stderr)
    return out


def peer_scores(texts: list[str]) -> dict[str, np.ndarray]:
    out = {}
    try:
        from profanity_check import predict_prob

        out["profanity"] = np.asarray(predict_prob([t[:5000] for t in texts]), dtype=np.float64)
    except Exception as e:  # noqa: BLE001 - a missing or broken peer is reported, not fatal
        print(f"  alt-profanity-check unavailable: {e}", file=sys.stderr)
    try:
        os.environ.setdefault("LC_ALL", "en_US.UTF-8")
        from hatesonar import Sonar

        sonar = Sonar()
        scores = []
        for t in texts:
            r = sonar.ping(text=t[:5000])
            neither = next(c["confidence"] for c in r["classes"] if c["class_name"] == "neither")
            scores.append(1.0 - neither)
        out["hatesonar"] = np.asarray(scores)
    except Exception as e:  # noqa: BLE001
        print(f"  hatesonar unavailable ({e}); it needs the en_US.UTF-8 locale", file=sys.stderr)
    return out


def main() -> None:
    ap_ = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap_.add_argument("--model", default=str(ROOT / "models" / "default"))
    ap_.add_argument("--data-dir", default=None)
    ap_.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "quality.json"))
    ap_.add_argument("--seed", type=int, default=0)
    args = ap_.parse_args()

    mod = Moderator.load(args.model)
    cats = mod.categories
    examples = load_examples(args.data_dir, taxonomy=mod.taxonomy)
    train = [e for e in examples if e.split == "train"]
    test = [e for e in examples if e.split == "test"]
    texts = [e.text for e in test]
    y, m = label_matrix(test, cats)
    sources = np.array([e.source for e in test])
    timings = {}

    print(f"scoring {len(test)} test texts with {args.model}…", file=sys.stderr)
    t0 = time.perf_counter()
    systems = {"ours": mod.score(texts).astype(np.float64)}
    timings["ours"] = time.perf_counter() - t0
    print("training TF-IDF + LR on the train split…", file=sys.stderr)
    t0 = time.perf_counter()
    systems["tfidf_lr"] = tfidf_scores(train, test, cats, args.seed)
    timings["tfidf_lr_train_and_score"] = time.perf_counter() - t0
    print("scoring with the PyPI peers…", file=sys.stderr)
    for name, s in peer_scores(texts).items():
        systems[name] = s[:, None].repeat(len(cats), 1)

    targets = {c: (y[:, j], m[:, j]) for j, c in enumerate(cats)}
    abuse_idx = [cats.index(c) for c in ABUSE if c in cats]
    targets["unsafe_abuse"] = unsafe_target(y, m, abuse_idx)
    targets["unsafe_all"] = unsafe_target(y, m, list(range(len(cats))))

    def system_score(name: str, target: str) -> np.ndarray:
        s = systems[name]
        if target == "unsafe_abuse":
            return s[:, abuse_idx].max(1)
        if target == "unsafe_all":
            return s.max(1)
        return s[:, cats.index(target)]

    results = {"n_test": len(test), "systems": list(systems), "overall": {}, "per_source": {}, "timings_s": timings,
               "model": args.model}
    for t, (yy, kk) in targets.items():
        results["overall"][t] = {"positives": int(((yy >= 0.5) & (kk > 0)).sum()),
                                 **{s: ap(system_score(s, t), yy, kk) for s in systems}}
    for src in sorted(set(sources)):
        sel = sources == src
        results["per_source"][src] = {}
        for t in ["unsafe_abuse", *cats]:
            yy, kk = targets[t]
            row = {"positives": int(((yy[sel] >= 0.5) & (kk[sel] > 0)).sum())}
            row.update({s: ap(system_score(s, t)[sel], yy[sel], kk[sel]) for s in systems})
            if any(v is not None for k, v in row.items() if k != "positives"):
                results["per_source"][src][t] = row

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(markdown(results))


def markdown(results: dict) -> str:
    systems = results["systems"]

    def f(v):
        return "—" if v is None else f"{v:.3f}"

    lines = [f"Test split, {results['n_test']} texts; AUPRC (higher is better).", "",
             "| target | positives | " + " | ".join(systems) + " |", "|---|---|" + "---|" * len(systems)]
    for t, row in results["overall"].items():
        best = max((row[s] for s in systems if row[s] is not None), default=None)
        cells = [(f"**{f(row[s])}**" if row[s] is not None and row[s] == best else f(row[s])) for s in systems]
        lines.append(f"| {t} | {row['positives']} | " + " | ".join(cells) + " |")
    lines += ["", "Per source, `unsafe_abuse` (any of toxic/hate/violence/sexual/self_harm):", "",
              "| source | positives | " + " | ".join(systems) + " |", "|---|---|" + "---|" * len(systems)]
    for src, rows in results["per_source"].items():
        row = rows.get("unsafe_abuse")
        if not row:
            continue
        cells = [f(row[s]) + (" (contaminated)" if src in CONTAMINATED.get(s, ()) else "") for s in systems]
        lines.append(f"| {src} | {row['positives']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
