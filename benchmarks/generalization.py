"""Generalization, not in-domain fit: held-out sources, identity bias, human harm judgments, behaviour.

    .venv/bin/python benchmarks/generalization.py \
        --model shipped=models/default --model baseline_0.3.0=runs/baseline-0.3.0 \
        --model heldout=runs/pkg-heldout --heldout-model heldout

Every model is a package scored through the public `Moderator` (ONNX), so the numbers are what users get.
Five measurements, each in the results JSON (benchmarks/results/generalization.json) under its own key:

1. out_of_domain: per-category AUPRC on whole sources that the `--heldout-model` never saw in training,
   validation or calibration (HELDOUT_SOURCES; all of their items), for every model. The 0.3.0 model
   never saw them either; the shipped model did (its row there is in-domain and marked so).
2. identity_bias: on the test split, for `hate`: subgroup AUC, BPSN AUC and BNSP AUC per identity group
   (Borkan et al. 2019) and their generalized means (p = -5). Groups come from the source where it names
   them (ToxiGen's files, EDOS = women, Hatemoji targets) and otherwise from GROUP_TERMS, a word matcher.
   A group needs >= MIN_GROUP items of each class for its numbers.
3. harm_preference: on hh_rlhf_harmless_base_test, the last Assistant turn of the chosen (judged less
   harmful) and rejected transcripts, where they differ; the share of pairs where the model scores the
   chosen reply lower (ties count half). Harm score = max over toxic, hate, violence, sexual, self_harm.
   The PyPI peers alt-profanity-check and hatesonar (1 - P(neither)) on the same pairs.
4. behavioural: the CheckList-style suite of moderation/behavioural.py, pass rate per capability.
5. in_domain: test-split AUPRC per category on the ten original sources (the forgetting check).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HELDOUT_SOURCES = ("olid_v1", "youtube_spam_collection", "hatemoji_build")
ORIGINAL_SOURCES = ("davidson_hate_offensive", "ethos", "convabuse", "toxic_spans", "surge_toxicity",
                    "jigsaw_toxic_sample", "constraint_covid_fakenews", "liar", "sms_spam_collection",
                    "suicide_severity_reddit")
HARM = ("toxic", "hate", "violence", "sexual", "self_harm")
MIN_GROUP = 10
GROUP_TERMS = {
    "muslim": r"muslims?|islam\w*|moslems?",
    "jewish": r"jews?|jewish|judaism",
    "black": r"black (?:people|men|women|folks?|person|man|woman|community)|african[- ]americans?|blacks",
    "asian": r"asians?|chinese|japanese|koreans?",
    "latino": r"latin[oax]s?|hispanics?|mexicans?",
    "lgbtq": r"gays?|lesbians?|lgbt\w*|queers?|homosexuals?|bisexuals?",
    "trans": r"trans(?:gender)?(?: people| women| men| folks?)?|transsexuals?",
    "women": r"women|woman|girls?|females?|wives|wife",
    "immigrant": r"immigrants?|refugees?|migrants?|illegals?",
    "disability": r"disabled|disabilit\w+|autis\w+|retard\w*|wheelchair",
    "middle_east": r"arabs?|arabic|middle eastern",
}
_GROUP_RE = {g: re.compile(rf"\b(?:{p})\b", re.IGNORECASE) for g, p in GROUP_TERMS.items()}


def groups_of(text: str, given: tuple[str, ...]) -> set[str]:
    alias = {"mexican": "latino", "chinese": "asian", "physical_disability": "disability",
             "mental_disability": "disability", "bisexual": "lgbtq"}
    found = {alias.get(g, g) for g in given}
    found |= {g for g, rx in _GROUP_RE.items() if rx.search(text)}
    return found


def auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if y.sum() < MIN_GROUP or (1 - y).sum() < MIN_GROUP:
        return None
    return float(roc_auc_score(y, s))


def generalized_mean(values, p: float = -5.0) -> float | None:
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    return None if not len(v) else float(np.mean(v ** p) ** (1 / p))


def identity_bias(scores: np.ndarray, test, hate_col: int) -> dict:
    y = np.array([e.labels["hate"] for e in test], dtype=np.float64) >= 0.5
    s = scores[:, hate_col]
    membership = [groups_of(e.text, e.identities) for e in test]
    groups = sorted({g for m in membership for g in m})
    rows = {}
    for g in groups:
        inside = np.array([g in m for m in membership])
        row = {"n": int(inside.sum()), "positives": int((inside & y).sum()),
               "subgroup_auc": auc(y[inside].astype(int), s[inside])}
        bpsn = (~inside & y) | (inside & ~y)  # background positives, subgroup negatives
        bnsp = (inside & y) | (~inside & ~y)
        row["bpsn_auc"] = auc(y[bpsn].astype(int), s[bpsn]) if (inside & ~y).sum() >= MIN_GROUP else None
        row["bnsp_auc"] = auc(y[bnsp].astype(int), s[bnsp]) if (inside & y).sum() >= MIN_GROUP else None
        rows[g] = row
    return {"n": int(len(test)), "positives": int(y.sum()), "overall_auc": auc(y.astype(int), s), "groups": rows,
            "generalized_mean": {m: generalized_mean(r[m] for r in rows.values()) for m in ("subgroup_auc", "bpsn_auc", "bnsp_auc")},
            "min_bpsn": min((r["bpsn_auc"] for r in rows.values() if r["bpsn_auc"] is not None), default=None)}


def last_assistant_turn(transcript: str) -> str:
    return transcript.rsplit("\n\nAssistant:", 1)[-1].strip()


def hh_pairs(data_dir: Path) -> list[tuple[str, str]]:
    pairs = []
    with gzip.open(data_dir / "hh_rlhf_harmless_base_test" / "test.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            c, r = last_assistant_turn(row["chosen"]), last_assistant_turn(row["rejected"])
            if c != r:
                pairs.append((c, r))
    return pairs


def preference_accuracy(chosen: np.ndarray, rejected: np.ndarray) -> float:
    return float(((chosen < rejected) + 0.5 * (chosen == rejected)).mean())


def peer_harm_scores(texts: list[str]) -> dict[str, np.ndarray]:
    out = {}
    try:
        from profanity_check import predict_prob

        out["profanity_check"] = np.asarray(predict_prob(texts), dtype=np.float64)
    except ImportError:
        print("alt-profanity-check not installed: pip install .[baselines]", file=sys.stderr)
    try:
        from hatesonar import Sonar

        sonar = Sonar()
        out["hatesonar"] = np.array([1.0 - next(c["confidence"] for c in sonar.ping(text=t)["classes"]
                                                  if c["class_name"] == "neither") for t in texts])
    except ImportError:
        print("hatesonar not installed: pip install .[baselines]", file=sys.stderr)
    return out


def auprc_table(scores: np.ndarray, examples, categories) -> dict:
    from moderation.training.data import label_matrix
    from moderation.training.evaluate import auprc

    y, m = label_matrix(examples, categories)
    out = {}
    for c, v in zip(categories, auprc(scores, y, m)):
        pos = int(((y[:, categories.index(c)] >= 0.5) & (m[:, categories.index(c)] > 0)).sum())
        if v is not None:
            out[c] = {"auprc": v, "positives": pos, "n": int(m[:, categories.index(c)].sum())}
    return out


def _f(x) -> str:
    return "—" if x is None else f"{x:.3f}"


def render(results: dict) -> str:
    """The Markdown tables (benchmarks/results/generalization.md, the README and the model card use them)."""
    models = results["models"]
    names = list(models)
    heldout = results.get("heldout_model")
    lines = [f"Models: " + "; ".join(f"`{n}` = {m['path']} ({m['version']})" for n, m in models.items()) + ".", ""]
    lines += [f"### Out-of-domain sources (AUPRC on every item of {', '.join(results['heldout_sources'])})", "",
              f"`{heldout}` was trained, calibrated and selected without these sources; 0.3.0 never saw them; a model "
              "that trained on them is marked *(in-domain)*.", "",
              "| source | category | positives / n | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for src in results["heldout_sources"]:
        cats = sorted({c for m in models.values() for c in m["out_of_domain"].get(src, {})})
        for c in cats:
            ref = next(m["out_of_domain"][src][c] for m in models.values() if c in m["out_of_domain"].get(src, {}))
            cells = []
            for n in names:
                v = models[n]["out_of_domain"].get(src, {}).get(c)
                trained = n != heldout and not n.startswith("baseline")
                cells.append(("—" if v is None else _f(v["auprc"])) + (" *(in-domain)*" if trained else ""))
            lines.append(f"| {src} | {c} | {ref['positives']} / {ref['n']} | " + " | ".join(cells) + " |")
    lines += ["", "### Identity bias for `hate` (test split; Borkan et al. 2019)", "",
              "| model | overall AUC | subgroup AUC (gen. mean) | BPSN AUC (gen. mean) | BNSP AUC (gen. mean) | lowest BPSN |",
              "|---|---|---|---|---|---|"]
    for n in names:
        b = models[n]["identity_bias"]
        g = b["generalized_mean"]
        low = min(((k, r["bpsn_auc"]) for k, r in b["groups"].items() if r["bpsn_auc"] is not None), key=lambda kv: kv[1], default=(None, None))
        lines.append(f"| {n} | {_f(b['overall_auc'])} | {_f(g['subgroup_auc'])} | {_f(g['bpsn_auc'])} | {_f(g['bnsp_auc'])} | "
                     f"{_f(low[1])} ({low[0]}) |")
    first = models[names[0]]["identity_bias"]["groups"]
    lines += ["", "BPSN AUC per group (items / hate positives from the first model's run):", "",
              "| group | items | positives | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for g, r in sorted(first.items(), key=lambda kv: -kv[1]["n"]):
        lines.append(f"| {g} | {r['n']} | {r['positives']} | " + " | ".join(_f(models[n]["identity_bias"]["groups"].get(g, {}).get("bpsn_auc")) for n in names) + " |")
    lines += ["", f"### Harm ranking on {results['hh_pairs']} human preference pairs (hh-rlhf harmless-base test)", "",
              "Share of pairs where the reply people judged less harmful scores lower (ties count half; 0.5 = chance).", "",
              "| scorer | accuracy |", "|---|---|"]
    lines += [f"| {n} | {_f(models[n]['harm_preference_accuracy'])} |" for n in names]
    lines += [f"| {n} (PyPI peer) | {_f(v['harm_preference_accuracy'])} |" for n, v in results.get("peers", {}).items()]
    caps = list(models[names[0]]["behavioural"]["capabilities"])
    lines += ["", "### Behavioural suite (moderation/behavioural.py): pass rate per capability", "",
              "| capability | cases | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for c in caps:
        lines.append(f"| {c} | {models[names[0]]['behavioural']['capabilities'][c]['n']} | " +
                     " | ".join(_f(models[n]["behavioural"]["capabilities"].get(c, {}).get("pass_rate")) for n in names) + " |")
    lines.append("| **all** | " + str(models[names[0]]["behavioural"]["n"]) + " | " +
                 " | ".join(f"**{_f(models[n]['behavioural']['pass_rate'])}**" for n in names) + " |")
    cats = list(models[names[0]]["in_domain_original_sources"])
    lines += ["", "### In-domain test AUPRC on the ten original sources (the forgetting check)", "",
              "| category | positives | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for c in cats:
        lines.append(f"| {c} | {models[names[0]]['in_domain_original_sources'][c]['positives']} | " +
                     " | ".join(_f(models[n]["in_domain_original_sources"].get(c, {}).get("auprc")) for n in names) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, help="NAME=PACKAGE_DIR (repeat)")
    p.add_argument("--heldout-model", default=None, help="the NAME trained without HELDOUT_SOURCES")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "generalization.json"))
    p.add_argument("--card", default=None, help="a package folder whose card.md gets these tables (manifest re-signed)")
    p.add_argument("--render-only", action="store_true", help="only rewrite the Markdown (and --card) from the JSON")
    p.add_argument("--behavioural-only", action="store_true",
                   help="re-run only the behavioural suite for the given models (the rest of their rows is kept)")
    args = p.parse_args()
    out_path = Path(args.out)
    if args.render_only:
        return finish(json.loads(out_path.read_text()), out_path, args.card)

    from moderation.behavioural import cases, run_suite
    from moderation.runtime import Moderator
    from moderation.taxonomy import load_taxonomy
    from moderation.training.data import load_examples, resolve_data_dir

    tax = load_taxonomy()
    cats = tax.names
    data_dir = resolve_data_dir(args.data_dir)
    examples = load_examples(data_dir, taxonomy=tax)
    heldout = [e for e in examples if e.source in HELDOUT_SOURCES]
    test = [e for e in examples if e.split == "test"]
    test_hate = [e for e in test if e.labels["hate"] is not None]
    original_test = [e for e in test if e.source in ORIGINAL_SOURCES]
    pairs = hh_pairs(data_dir)
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    results.update({"heldout_sources": list(HELDOUT_SOURCES), "heldout_model": args.heldout_model or results.get("heldout_model"),
                    "hh_pairs": len(pairs), "models": results.get("models", {})})

    for spec in args.model:
        name, _, path = spec.partition("=")
        started = time.time()
        mod = Moderator.load(path, threads=args.threads)
        print(f"[{name}] {path} (version {mod.version})", file=sys.stderr)
        row = {"path": path, "version": mod.version}
        if args.behavioural_only:
            row = results["models"][name]
            suite = run_suite(mod, cases())
            row["behavioural"] = {k: suite[k] for k in ("n", "passed", "pass_rate", "min_capability_pass_rate", "capabilities")}
            row["behavioural_failures"] = suite["failures"]
            print(f"[{name}] behavioural {suite['pass_rate']:.3f}", file=sys.stderr)
            out_path.write_text(json.dumps(results, indent=2))
            continue
        scores = mod.score([e.text for e in heldout])
        row["out_of_domain"] = {s: auprc_table(scores[[i for i, e in enumerate(heldout) if e.source == s]],
                                               [e for e in heldout if e.source == s], cats) for s in HELDOUT_SOURCES}
        row["identity_bias"] = identity_bias(mod.score([e.text for e in test_hate]), test_hate, cats.index("hate"))
        harm_idx = [cats.index(c) for c in HARM]
        chosen = mod.score([c for c, _ in pairs])[:, harm_idx].max(1)
        rejected = mod.score([r for _, r in pairs])[:, harm_idx].max(1)
        row["harm_preference_accuracy"] = preference_accuracy(chosen, rejected)
        suite = run_suite(mod, cases())
        row["behavioural"] = {k: suite[k] for k in ("n", "passed", "pass_rate", "min_capability_pass_rate", "capabilities")}
        row["behavioural_failures"] = suite["failures"]
        row["in_domain_original_sources"] = auprc_table(mod.score([e.text for e in original_test]), original_test, cats)
        row["seconds"] = round(time.time() - started, 1)
        results["models"][name] = row
        print(f"[{name}] behavioural {suite['pass_rate']:.3f} (min capability {suite['min_capability_pass_rate']:.3f}), "
              f"harm preference {row['harm_preference_accuracy']:.3f}, min BPSN {row['identity_bias']['min_bpsn']}, "
              f"{row['seconds']}s", file=sys.stderr)
        out_path.write_text(json.dumps(results, indent=2))  # after each model: a stopped run keeps what it did

    if "peers" not in results:
        peers = {}
        for name, s in peer_harm_scores([c for c, _ in pairs] + [r for _, r in pairs]).items():
            peers[name] = {"harm_preference_accuracy": preference_accuracy(s[: len(pairs)], s[len(pairs):])}
        results["peers"] = peers
    out_path.write_text(json.dumps(results, indent=2))
    finish(results, out_path, args.card)


def finish(results: dict, out_path: Path, card: str | None) -> None:
    md = render(results)
    out_path.with_suffix(".md").write_text("# Generalization (benchmarks/generalization.py)\n\n" + md)
    if card:
        from moderation.training.export import update_card_section

        update_card_section(card, "Generalization (benchmarks/generalization.py)", md)
    print(json.dumps({n: {"behavioural": r["behavioural"]["pass_rate"], "harm_pref": r["harm_preference_accuracy"],
                          "min_bpsn": r["identity_bias"]["min_bpsn"]} for n, r in results["models"].items()}, indent=1))


if __name__ == "__main__":
    main()
