"""Loaders for the shared datasets, mapped onto one example schema with soft labels.

Every loader reads the files in place from a configurable data directory (default
`../shared/datasets`, or `$MODERATION_DATA_DIR`) and returns `Example`s whose `labels` hold, per
category, the fraction of annotators who chose it (a soft label), or `None` where the source says
nothing about that category (the loss masks it).

SOURCE_TABLE below is the one place that decides what each source may teach the model. Read it before
changing anything: calling a category negative where the source never looked for it teaches the model
to miss it.
"""

from __future__ import annotations

import ast
import csv
import gzip
import hashlib
import io
import json
import os
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from moderation.errors import ModerationError
from moderation.taxonomy import Taxonomy, load_taxonomy

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "datasets"  # beside the checkout
SPLITS = ("train", "validation", "gate", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train, validation (with the gate carved out of it), test
# The promotion gate's own split: 30% of the validation band, by the same group hash. No reviewer sees it
# (`review push` and the loop draw from train/validation only), no threshold, epoch or RL step is chosen on
# it, and the test split stays for reporting only (it never chooses a model).
GATE_SHARE_OF_VALIDATION = 0.3


class DataError(ModerationError, RuntimeError):
    """A dataset is missing or malformed; the message says which file and where it was expected."""


@dataclass
class Example:
    id: str
    text: str
    source: str
    labels: dict[str, float | None]
    split: str = ""
    # One dict per annotator: {category: 0 or 1}; the annotator id where the source has one.
    annotators: list[tuple[str | None, dict[str, int]]] = field(default_factory=list)
    group: str = ""  # examples sharing a group never cross splits (same user, same text, a perturbation pair)
    # Identity groups the source says the text is about (ToxiGen's file, EDOS "women", Hatemoji targets);
    # empty where the source does not say. The bias benchmark reads these.
    identities: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceRule:
    """What one source may say about each category.

    labels:          categories the source's annotators actually judged (soft labels from votes).
    assumed_negative: categories the source never judged but whose texts we call negative on domain
                      grounds (curated news claims are not spam; SMS chat is not hate speech; insults and
                      chit-chat are not false factual claims). This is a prior, not a measurement: it adds
                      label noise where it is wrong, and it is what gives every head negatives from every
                      domain. Without it a head trained on one domain learns the domain: `misleading`,
                      trained only on news and political claims, flagged 18 of 20 everyday comments.
    negative_if_clean: categories set to 0 only on items every annotator judged clean on all of the
                      source's `labels` (a tweet nobody found offensive is not a threat either).
    Everything else is unknown (None) and masked in the loss.
    """

    labels: tuple[str, ...]
    assumed_negative: tuple[str, ...] = ()
    negative_if_clean: tuple[str, ...] = ()
    license: str = ""
    note: str = ""


# fmt: off
SOURCE_TABLE: dict[str, SourceRule] = {
    "davidson_hate_offensive": SourceRule(
        labels=("toxic", "hate"), assumed_negative=("spam", "misleading"),
        negative_if_clean=("violence", "sexual", "self_harm"),
        license="MIT", note="toxic = hate+offensive votes / annotators; hate = hate votes / annotators"),
    "ethos": SourceRule(
        labels=("hate", "violence"), assumed_negative=("spam", "misleading"),
        license="GPL-3.0", note="hate = isHate agreement share; violence only for the 433 hateful comments"),
    "convabuse": SourceRule(
        labels=("toxic", "hate", "sexual"), assumed_negative=("spam", "misleading"), negative_if_clean=("violence",),
        license="CC BY 4.0", note="toxic = abusive (-1..-3) votes, ambiguous counts 1/2; hate = racist/sexist/"
                                  "homophobic/transphobic/ableist; sexual = sex_harassment; users talk to a "
                                  "therapy bot, so self_harm stays unknown"),
    "toxic_spans": SourceRule(
        labels=("toxic", "hate", "violence"), assumed_negative=("spam", "misleading"), negative_if_clean=("self_harm",),
        license="CC0 1.0", note="per rater: any span = toxic, Identity attack = hate, Threat = violence"),
    "surge_toxicity": SourceRule(
        labels=("toxic",), assumed_negative=("spam", "misleading"), negative_if_clean=("hate", "violence", "sexual", "self_harm"),
        license="MIT", note="one label per row"),
    "jigsaw_toxic_sample": SourceRule(
        labels=("toxic", "hate", "violence"), assumed_negative=("spam", "misleading"), negative_if_clean=("sexual", "self_harm"),
        license="CC0 (data) / Apache-2.0 (repo)", note="toxic = toxic|severe|obscene|insult; 101 rows"),
    "constraint_covid_fakenews": SourceRule(
        labels=("misleading",), assumed_negative=("toxic", "hate", "violence", "sexual", "self_harm", "spam"),
        license="MIT (repo; data from CONSTRAINT@AAAI-2021)", note="URLs removed: they are a label shortcut"),
    "liar": SourceRule(
        labels=("misleading",), assumed_negative=("toxic", "hate", "violence", "sexual", "self_harm", "spam"),
        license="research only", note="6 grades -> soft misleading (pants-fire 1.0 ... true 0.0)"),
    "sms_spam_collection": SourceRule(
        labels=("spam",), assumed_negative=("toxic", "hate", "violence", "sexual", "self_harm"),
        negative_if_clean=("misleading",),
        license="free with attribution, no warranty", note="~400 duplicate texts merged; spam may be misleading, "
                                                           "ham is not"),
    "suicide_severity_reddit": SourceRule(
        labels=("self_harm",), assumed_negative=("spam", "misleading"),
        license="GPL-3.0", note="per-user label over that user's posts: Ideation/Behavior/Attempt 1, "
                                "Indicator 0.5, Supportive 0"),
    "edos_sexism": SourceRule(
        labels=("hate", "violence", "toxic"), assumed_negative=("spam",),
        license="CC0 1.0", note="sexist = hate (gender); 1.x threats/incitement = violence, other sexist 0, "
                                "not-sexist unknown; 2.x/3.1 = toxic, not-sexist unknown. not-sexist posts are "
                                "hate negatives although EDOS only looked for sexism (most mention women)"),
    "gab_hate_corpus": SourceRule(
        labels=("hate", "violence", "toxic"), assumed_negative=("spam",),
        license="not stated (third-party copy; OSF original)", note="hd = hate, cv = violence, toxic = hd or vo; "
                                                                     "Gab is conspiracy-heavy, so misleading stays unknown"),
    "hatemoji_build": SourceRule(
        labels=("hate", "violence", "toxic"), assumed_negative=("spam", "misleading"),
        license="CC BY 4.0", note="label_gold = hate; threateninglanguage = violence (other hate 0, not-hate "
                                  "unknown); hate = toxic, not-hate unknown; perturbation pairs share a split"),
    "hatexplain_majority_mbib": SourceRule(
        labels=("hate", "toxic"), assumed_negative=("spam",),
        license="MIT (HateXplain); derived CSV in a GPL-3.0 repo", note="majority labels: hatespeech = hate+toxic, "
                                                                         "offensive = toxic, normal = neither; "
                                                                         "no-majority posts dropped; lower-cased text"),
    "olid_v1": SourceRule(
        labels=("toxic",), assumed_negative=("spam",), negative_if_clean=("hate", "violence", "sexual"),
        license="not stated (third-party copy of OLID v1.0)", note="OFF/TIN = toxic 1, OFF/UNT (untargeted "
                                                                   "profanity) 0.5, NOT 0; group-targeted offence is "
                                                                   "not called hate"),
    "toxigen_statements": SourceRule(
        labels=("hate",), assumed_negative=("spam",), negative_if_clean=("toxic", "violence", "sexual", "self_harm"),
        license="CDLA-Permissive-2.0 (data), MIT (code)", note="hate_* files = hate, neutral_* = not hate and clean; "
                                                              "statements deduplicated across demonstrations and prompts"),
    "tweeteval_hate": SourceRule(
        labels=("hate",), assumed_negative=("spam",),
        license="TweetEval: released without restrictions (HatEval terms apply)", note="hate against immigrants "
                                                                                      "or women; not-hate often "
                                                                                      "mentions them"),
    "youtube_spam_collection": SourceRule(
        labels=("spam",), negative_if_clean=("misleading",),
        license="not stated (UCI original)", note="CLASS = spam; HTML unescaped and tags stripped; author names "
                                                  "dropped"),
}
# fmt: on

LIAR_GRADES = {"pants-fire": 1.0, "false": 0.8, "barely-true": 0.6, "half-true": 0.4, "mostly-true": 0.2, "true": 0.0}
SUICIDE_LEVELS = {"Supportive": 0.0, "Indicator": 0.5, "Ideation": 1.0, "Behavior": 1.0, "Attempt": 1.0}
CONVABUSE_HATE_TYPES = ("racist", "sexist", "homophobic", "transphobic", "ableist")
URL_RE = re.compile(r"(https?(?::|…)\S*|www\.\S+|\b\w+\.(?:com|org|gov|in|ly|co|io)/\S*)", re.IGNORECASE)
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data directory: the argument, else $MODERATION_DATA_DIR, else ../shared/datasets."""
    chosen = data_dir or os.environ.get("MODERATION_DATA_DIR") or DEFAULT_DATA_DIR
    p = Path(chosen).expanduser().resolve()
    if not p.is_dir():
        raise DataError(
            f"data directory not found: {p}. The datasets are expected there (one folder per source, e.g. "
            f"{p / 'davidson_hate_offensive'}); pass --data-dir or set MODERATION_DATA_DIR."
        )
    return p


def normalise_for_dedup(text: str) -> str:
    """The key two texts share when they are the same message: case, spacing, punctuation and URLs aside."""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = URL_RE.sub(" ", t)
    t = t.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    return " ".join(_NON_WORD.sub(" ", t).split())


def stable_unit(key: str, seed: int = 0) -> float:
    """A number in [0, 1) fixed by the key and seed (sha256, not Python's per-process salted hash)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()[:8], "big") / 2**64


def split_of(key: str, seed: int = 0) -> str:
    """Deterministic split from a stable hash of the group key."""
    h = stable_unit(key, seed)
    if h < SPLIT_FRACTIONS[0]:
        return "train"
    if h < SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1] * (1 - GATE_SHARE_OF_VALIDATION):
        return "validation"
    return "gate" if h < SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1] else "test"


# ---------------------------------------------------------------- file helpers


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"dataset file not found: {path}")
    return path


def _open_text(path: Path) -> io.TextIOBase:
    _require(path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _read_csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with _open_text(path) as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def _labels(source: str, known: dict[str, float]) -> dict[str, float | None]:
    """Apply SOURCE_TABLE: judged labels, assumed negatives, negatives on clean items, else unknown."""
    rule = SOURCE_TABLE[source]
    labels: dict[str, float | None] = {c: None for c in ALL_CATEGORIES}
    for c in rule.assumed_negative:
        labels[c] = 0.0
    if rule.negative_if_clean and all(known.get(c, 0.0) == 0.0 for c in rule.labels):
        for c in rule.negative_if_clean:
            labels[c] = 0.0
    for c, v in known.items():
        if c not in rule.labels:
            raise AssertionError(f"{source} loader set {c}, which SOURCE_TABLE does not list")
        labels[c] = None if v is None else float(min(1.0, max(0.0, v)))
    return labels


def _votes_to_soft(annotators: list[tuple[str | None, dict[str, int]]], categories: Iterable[str]) -> dict[str, float]:
    out = {}
    for c in categories:
        votes = [a[c] for _, a in annotators if c in a]
        out[c] = sum(votes) / len(votes) if votes else None
    return out


# The categories SOURCE_TABLE maps the datasets into: the shipped taxonomy's, read from it (a custom taxonomy
# keeps the ones it shares; load_examples drops the rest).
ALL_CATEGORIES = tuple(load_taxonomy(None).names)


# ---------------------------------------------------------------- one loader per source


def load_davidson(root: Path) -> list[Example]:
    out = []
    for row in _read_csv(root / "davidson_hate_offensive" / "labeled_data.csv.gz"):
        n, hate, off = int(row["count"]), int(row["hate_speech"]), int(row["offensive_language"])
        # The source gives vote counts, not annotator ids: rebuild anonymous per-annotator labels.
        annotators = [(None, {"toxic": int(i < hate + off), "hate": int(i < hate)}) for i in range(n)]
        text = row["tweet"].replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
        known = {"toxic": (hate + off) / n, "hate": hate / n}
        out.append(Example(f"davidson:{row['']}", text, "davidson_hate_offensive", _labels("davidson_hate_offensive", known), annotators=annotators))
    return out


def load_ethos(root: Path) -> list[Example]:
    d = root / "ethos"
    violence = {r["comment"].strip(): float(r["violence"]) for r in _read_csv(d / "Ethos_Dataset_Multi_Label.csv", ";")}
    out = []
    for i, row in enumerate(_read_csv(d / "Ethos_Dataset_Binary.csv", ";")):
        text, hate = row["comment"].strip(), float(row["isHate"])
        known = {"hate": hate, "violence": violence.get(text) if hate >= 0.5 else None}
        out.append(Example(f"ethos:{i}", text, "ethos", _labels("ethos", known)))
    return out


def load_convabuse(root: Path) -> list[Example]:
    d = root / "convabuse"
    out = []
    for fname in ("ConvAbuseEMNLPtrain.csv", "ConvAbuseEMNLPvalid.csv", "ConvAbuseEMNLPtest.csv"):
        for row in _read_csv(d / fname):
            annotators = []
            for n in range(1, 9):
                p = f"Annotator{n}_"
                if not row.get(p + "is_abuse.1", "").strip():
                    continue  # this annotator did not label the item
                def flag(col: str) -> int:
                    # A few cells hold repeat annotations ("0, 0"): the first one counts.
                    first = (row.get(p + col) or "0").split(",")[0].strip() or "0"
                    return int(float(first) == 1)
                abusive = any(flag(f"is_abuse.{k}") for k in ("-1", "-2", "-3"))
                ambiguous = flag("is_abuse.0")
                annotators.append((
                    f"convabuse:{n}",
                    {
                        "toxic": int(abusive),
                        "hate": int(any(flag(t) for t in CONVABUSE_HATE_TYPES)),
                        "sexual": flag("sex_harassment"),
                        "_ambiguous": ambiguous,
                    },
                ))
            if not annotators:
                continue
            k = len(annotators)
            known = {
                # An "ambiguous" vote counts half: the annotator saw possible abuse.
                "toxic": sum(a["toxic"] + 0.5 * a["_ambiguous"] for _, a in annotators) / k,
                "hate": sum(a["hate"] for _, a in annotators) / k,
                "sexual": sum(a["sexual"] for _, a in annotators) / k,
            }
            for _, a in annotators:
                a.pop("_ambiguous")
            eid = f"convabuse:{row['example_id']}"
            out.append(Example(eid, row["user"], "convabuse", _labels("convabuse", known), annotators=annotators))
    return out


def load_toxic_spans(root: Path) -> list[Example]:
    d = root / "toxic_spans"
    span_types: dict[str, set[str]] = defaultdict(set)
    for row in _read_csv(d / "spans.csv"):
        span_types[row["annotation"]].add((row["type"] or "").strip())
    per_comment: dict[str, list[tuple[str | None, dict[str, int]]]] = defaultdict(list)
    for row in _read_csv(d / "annotations.csv.gz"):
        types = span_types.get(row["annotation"], set())
        all_toxic, not_toxic = row["all toxic"] == "True", row["not toxic"] == "True"
        if types:
            toxic = 1
        elif not_toxic:
            toxic = 0  # "not toxic" with no spans: the rater found nothing (both flags set is common)
        elif all_toxic:
            toxic = 1
        else:
            continue  # neither a span nor a flag: no judgment recorded
        annotators = per_comment[row["comment_id"]]
        annotators.append((f"toxic_spans:{row['worker']}", {
            "toxic": toxic,
            "hate": int(any(t.startswith("Identity") for t in types)),
            "violence": int("Threat" in types),
        }))
    out = []
    for row in _read_csv(d / "comments.csv.gz"):
        annotators = per_comment.get(row["comment_id"])
        if not annotators or len(annotators) > 50:
            continue  # the 357-rater quiz post is a rater-screening item, not data
        known = _votes_to_soft(annotators, ("toxic", "hate", "violence"))
        out.append(Example(f"toxic_spans:{row['comment_id']}", row["comment_text"], "toxic_spans",
                           _labels("toxic_spans", known), annotators=annotators))
    return out


def load_surge(root: Path) -> list[Example]:
    out = []
    for i, row in enumerate(_read_csv(root / "surge_toxicity" / "toxicity_en.csv")):
        known = {"toxic": 1.0 if row["is_toxic"].strip() == "Toxic" else 0.0}
        out.append(Example(f"surge:{i}", row["text"], "surge_toxicity", _labels("surge_toxicity", known)))
    return out


def load_jigsaw_sample(root: Path) -> list[Example]:
    out = []
    for i, row in enumerate(_read_csv(root / "jigsaw_toxic_sample" / "test_examples.csv")):
        v = {k: int(row[k]) for k in ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")}
        known = {
            "toxic": float(max(v["toxic"], v["severe_toxic"], v["obscene"], v["insult"])),
            "hate": float(v["identity_hate"]),
            "violence": float(v["threat"]),
        }
        out.append(Example(f"jigsaw:{i}", row["comment_text"], "jigsaw_toxic_sample", _labels("jigsaw_toxic_sample", known)))
    return out


def load_covid(root: Path) -> list[Example]:
    d = root / "constraint_covid_fakenews"
    out = []
    for fname in ("Constraint_Train.csv.gz", "Constraint_Val.csv", "english_test_with_labels.csv"):
        for row in _read_csv(d / fname):
            # 69% of "real" posts carry a URL against 33% of "fake" ones: strip URLs so the model must
            # read the claim, not the link.
            text = " ".join(URL_RE.sub(" ", row["tweet"]).split())
            if not text:
                continue
            known = {"misleading": 1.0 if row["label"].strip() == "fake" else 0.0}
            out.append(Example(f"covid:{fname.split('.')[0]}:{row['id']}", text, "constraint_covid_fakenews",
                               _labels("constraint_covid_fakenews", known)))
    return out


def load_liar(root: Path) -> list[Example]:
    d = root / "liar"
    out = []
    for fname in ("train.tsv.gz", "valid.tsv", "test.tsv"):
        with _open_text(d / fname) as f:
            for lineno, cols in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
                if len(cols) < 3 or cols[1] not in LIAR_GRADES:
                    raise DataError(f"{d / fname}:{lineno}: expected a LIAR row with a truth grade, got {cols[:2]}")
                # Only the statement: the speaker's credit-history columns leak the label.
                known = {"misleading": LIAR_GRADES[cols[1]]}
                out.append(Example(f"liar:{cols[0]}", cols[2], "liar", _labels("liar", known)))
    return out


def load_sms(root: Path) -> list[Example]:
    path = root / "sms_spam_collection" / "SMSSpamCollection"
    out = []
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            label, sep, text = line.rstrip("\r\n").partition("\t")
            if not sep or label not in ("ham", "spam"):
                raise DataError(f"{path}:{lineno}: expected 'ham|spam<TAB>text'")
            out.append(Example(f"sms:{lineno}", text, "sms_spam_collection",
                               _labels("sms_spam_collection", {"spam": float(label == "spam")})))
    return out


def _parse_posts(raw: str) -> list[str]:
    try:
        posts = ast.literal_eval(raw)  # literal_eval parses literals only; it never executes code
        if isinstance(posts, list):
            return [str(p) for p in posts]
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    # Not always a valid literal (see the dataset README): split on the quoted-list separators.
    return [p.strip(" '\"") for p in re.split(r"'\s*,\s*'|\"\s*,\s*\"", raw.strip("[]")) if p.strip(" '\"")]


def load_suicide(root: Path) -> list[Example]:
    out = []
    for row in _read_csv(root / "suicide_severity_reddit" / "500_Reddit_users_posts_labels.csv.gz"):
        level = row["Label"].strip()
        if level not in SUICIDE_LEVELS:
            raise DataError(f"suicide_severity_reddit: unknown label {level!r} for {row['User']}")
        # Labels are per user: one example per user over that user's posts (windows cover long ones).
        text = "\n".join(_parse_posts(row["Post"]))
        ex = Example(f"suicide:{row['User']}", text, "suicide_severity_reddit",
                     _labels("suicide_severity_reddit", {"self_harm": SUICIDE_LEVELS[level]}))
        ex.group = f"user:{row['User']}"
        out.append(ex)
    return out


EDOS_TOXIC_VECTORS = ("2.1", "2.2", "2.3", "3.1")  # descriptive/aggressive/dehumanising attacks, gendered slurs


def load_edos(root: Path) -> list[Example]:
    out = []
    for row in _read_csv(root / "edos_sexism" / "edos_labelled_aggregated.csv.gz"):
        sexist = row["label_sexist"].strip() == "sexist"
        category, vector = row["label_category"].strip(), row["label_vector"].strip()
        known = {
            "hate": float(sexist),
            # EDOS puts each sexist post in one category, so a sexist post outside "1. threats" is not a threat;
            # a not-sexist post was never checked for threats against anyone else.
            "violence": float(category.startswith("1.")) if sexist else None,
            "toxic": float(category.startswith("1.") or vector.startswith(EDOS_TOXIC_VECTORS)) if sexist else None,
        }
        ex = Example(f"edos:{row['rewire_id']}", row["text"], "edos_sexism", _labels("edos_sexism", known))
        ex.identities = ("women",)
        out.append(ex)
    return out


def load_gab(root: Path) -> list[Example]:
    d = root / "gab_hate_corpus"
    out = []
    for fname in ("ghc_train.tsv.gz", "ghc_test.tsv"):
        with _open_text(d / fname) as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader, None)
            if header != ["text", "hd", "cv", "vo"]:
                raise DataError(f"{d / fname}: expected the header text/hd/cv/vo, got {header}")
            for lineno, cols in enumerate(reader, 2):
                if len(cols) != 4 or any(c not in ("0", "1") for c in cols[1:]):
                    raise DataError(f"{d / fname}:{lineno}: expected text and three 0/1 labels")
                hd, cv, vo = (int(c) for c in cols[1:])
                known = {"hate": float(hd), "violence": float(cv), "toxic": float(hd or vo)}
                out.append(Example(f"gab:{fname.split('.')[0]}:{lineno}", cols[0], "gab_hate_corpus",
                                   _labels("gab_hate_corpus", known)))
    return out


HATEMOJI_GROUPS = {"wom": "women", "bla": "black", "mus": "muslim", "jew": "jewish", "gay": "lgbtq", "lgbtq": "lgbtq",
                   "trans": "trans", "immig": "immigrant", "refu": "immigrant", "dis": "disability", "asi": "asian",
                   "arab": "middle_east", "east.asian": "asian", "asi.east": "asian", "asi.south": "asian",
                   "indig": "native_american", "mixed.race": "mixed_race", "non.white": "non_white"}


def load_hatemoji(root: Path) -> list[Example]:
    d = root / "hatemoji_build"
    out = []
    for fname in ("train.csv", "validation.csv", "test.csv"):
        for row in _read_csv(d / fname):
            hate = row["label_gold"].strip() == "1"
            known = {"hate": float(hate),
                     "violence": float(row["type"].strip() == "threateninglanguage") if hate else None,
                     "toxic": 1.0 if hate else None}
            ex = Example(f"hatemoji:{row['entry_id']}", row["text"], "hatemoji_build", _labels("hatemoji_build", known))
            # An entry and its minimal perturbation must share a split (they leak across the official one).
            pair = sorted(x for x in (row["entry_id"].strip(), row.get("matched_id", "").strip()) if x)
            ex.group = f"hatemoji-pair:{pair[0]}"
            try:
                targets = ast.literal_eval(row["target"]) if row["target"].strip().startswith("[") else []
            except (ValueError, SyntaxError):
                targets = []
            ex.identities = tuple(sorted({HATEMOJI_GROUPS[t] for t in targets if t in HATEMOJI_GROUPS}))
            out.append(ex)
    return out


def load_hatexplain(root: Path) -> list[Example]:
    out = []
    for row in _read_csv(root / "hatexplain_majority_mbib" / "092-HateXplain.csv.gz"):
        category = row["category"].strip()
        if category == "3":
            continue  # no majority among the three annotators: no label to learn from
        if category not in ("0", "1", "2"):
            raise DataError(f"hatexplain_majority_mbib: unknown category {category!r} for post {row['']}")
        known = {"hate": float(category == "1"), "toxic": float(category in ("1", "2"))}
        out.append(Example(f"hatexplain:{row['']}", row["text"], "hatexplain_majority_mbib",
                           _labels("hatexplain_majority_mbib", known)))
    return out


# Untargeted profanity sits at the edge of `toxic` (aimed at a person or group): half a vote. It counts as
# a positive where labels are binarised at 0.5, so OLID's level A (OFF vs NOT) is what metrics read.
OLID_TOXIC = {("OFF", "TIN"): 1.0, ("OFF", "UNT"): 0.5, ("NOT", "NULL"): 0.0}


def load_olid(root: Path) -> list[Example]:
    d = root / "olid_v1"
    rows = []
    with _open_text(d / "olid-training-v1.0.tsv.gz") as f:
        for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            rows.append((r["id"], r["tweet"], r["subtask_a"], r["subtask_b"]))
    gold_a = {r["id"]: r["label"] for r in _read_csv(d / "labels-levela.csv")}
    gold_b = {r["id"]: r["label"] for r in _read_csv(d / "labels-levelb.csv")}
    for r in _read_csv(d / "testset-levela.tsv", "\t"):
        rows.append((r["id"], r["tweet"], gold_a.get(r["id"], ""), gold_b.get(r["id"], "NULL")))
    out = []
    for tid, tweet, a, b in rows:
        if (a, b) not in OLID_TOXIC:
            raise DataError(f"olid_v1: tweet {tid} has levels A/B {a!r}/{b!r}, expected OFF/TIN, OFF/UNT or NOT/NULL")
        out.append(Example(f"olid:{tid}", tweet, "olid_v1", _labels("olid_v1", {"toxic": OLID_TOXIC[(a, b)]})))
    return out


TOXIGEN_FILE = re.compile(r"^(hate|neutral)_(.+?)(?:_sentences|_1k)?\.txt(?:\.gz)?$")


def load_toxigen(root: Path) -> list[Example]:
    d = root / "toxigen_statements"
    files = sorted(d.glob("demonstrations/*/*.txt")) + sorted(d.glob("prompts/*.txt.gz"))
    if not files:
        raise DataError(f"no ToxiGen statement files under {d}")
    seen: dict[str, Example] = {}
    for path in files:
        m = TOXIGEN_FILE.match(path.name)
        if not m:
            raise DataError(f"{path}: cannot read hate/neutral and the group from the file name")
        kind, group = m.group(1), m.group(2)
        with _open_text(path) as f:
            for line in f:
                # Prompt lines hold six statements as "- a\\n- b\\n...-" with a literal backslash-n.
                for part in line.strip().split("\\n"):
                    text = part.strip().removeprefix("-").strip()
                    if len(text) < 3:
                        continue
                    key = text.casefold()
                    if key in seen:
                        ex = seen[key]
                        ex.identities = tuple(sorted({*ex.identities, group}))
                        continue
                    ex = Example(f"toxigen:{kind}:{group}:{len(seen)}", text, "toxigen_statements",
                                 _labels("toxigen_statements", {"hate": float(kind == "hate")}))
                    ex.identities = (group,)
                    seen[key] = ex
    return list(seen.values())


def load_tweeteval_hate(root: Path) -> list[Example]:
    d = root / "tweeteval_hate"
    out = []
    for split, text_file in (("train", "train_text.txt.gz"), ("val", "val_text.txt"), ("test", "test_text.txt")):
        with _open_text(d / text_file) as f:
            texts = [t.rstrip("\r\n") for t in f]
        with _open_text(d / f"{split}_labels.txt") as f:
            labels = [t.strip() for t in f if t.strip()]
        if len(texts) != len(labels):
            raise DataError(f"{d}: {text_file} has {len(texts)} lines but {split}_labels.txt has {len(labels)}")
        for i, (text, label) in enumerate(zip(texts, labels)):
            if label not in ("0", "1"):
                raise DataError(f"{d / (split + '_labels.txt')}:{i + 1}: expected 0 or 1, got {label!r}")
            out.append(Example(f"tweeteval_hate:{split}:{i}", text, "tweeteval_hate",
                               _labels("tweeteval_hate", {"hate": float(label)})))
    return out


_TAG = re.compile(r"<[^>]+>")


def load_youtube_spam(root: Path) -> list[Example]:
    import html

    d = root / "youtube_spam_collection"
    files = sorted(d.glob("Youtube0*.csv"))
    if not files:
        raise DataError(f"no Youtube0*.csv files in {d}")
    out = []
    for path in files:
        for i, row in enumerate(_read_csv(path)):
            if row.get("CLASS", "").strip() not in ("0", "1"):
                raise DataError(f"{path}:{i + 2}: CLASS must be 0 or 1")
            text = " ".join(_TAG.sub(" ", html.unescape(row["CONTENT"])).replace("\ufeff", "").split())
            out.append(Example(f"youtube:{row['COMMENT_ID']}", text, "youtube_spam_collection",
                               _labels("youtube_spam_collection", {"spam": float(row["CLASS"].strip())})))
    return out


LOADERS: dict[str, Callable[[Path], list[Example]]] = {
    "davidson_hate_offensive": load_davidson,
    "ethos": load_ethos,
    "convabuse": load_convabuse,
    "toxic_spans": load_toxic_spans,
    "surge_toxicity": load_surge,
    "jigsaw_toxic_sample": load_jigsaw_sample,
    "constraint_covid_fakenews": load_covid,
    "liar": load_liar,
    "sms_spam_collection": load_sms,
    "suicide_severity_reddit": load_suicide,
    "edos_sexism": load_edos,
    "gab_hate_corpus": load_gab,
    "hatemoji_build": load_hatemoji,
    "hatexplain_majority_mbib": load_hatexplain,
    "olid_v1": load_olid,
    "toxigen_statements": load_toxigen,
    "tweeteval_hate": load_tweeteval_hate,
    "youtube_spam_collection": load_youtube_spam,
}


# ---------------------------------------------------------------- putting it together


def _merge(a: Example, b: Example) -> None:
    """Fold duplicate b into a: average the labels both know, keep what only one knows."""
    for c, vb in b.labels.items():
        va = a.labels.get(c)
        if vb is None:
            continue
        a.labels[c] = vb if va is None else (va + vb) / 2
    a.annotators.extend(b.annotators)
    a.identities = tuple(sorted({*a.identities, *b.identities}))


def load_examples(
    data_dir: str | Path | None = None,
    sources: Iterable[str] | None = None,
    taxonomy: Taxonomy | None = None,
    seed: int = 0,
) -> list[Example]:
    """Load, deduplicate and split. Duplicates (exact or normalised) are merged into one example, so a
    text can never sit in two splits; the split comes from a stable hash of the normalised text."""
    root = resolve_data_dir(data_dir)
    chosen = list(sources) if sources else list(LOADERS)
    unknown = [s for s in chosen if s not in LOADERS]
    if unknown:
        raise DataError(f"unknown source(s) {unknown}; known: {list(LOADERS)}")
    by_key: dict[str, Example] = {}
    order: list[str] = []
    reserved = reserved_benchmark_keys(root)
    for source in chosen:
        for ex in LOADERS[source](root):
            if not ex.text or not ex.text.strip():
                continue
            key = normalise_for_dedup(ex.text) or ex.text
            if key in reserved:
                continue  # a benchmark's test post: no split of ours may hold it (see reserved_benchmark_keys)
            ex.group = ex.group or key
            if key in by_key:
                _merge(by_key[key], ex)
                continue
            by_key[key] = ex
            order.append(key)
    examples = [by_key[k] for k in order]
    for ex in examples:
        ex.split = split_of(ex.group, seed)
    if taxonomy is not None:
        examples = [remap_to_taxonomy(ex, taxonomy) for ex in examples]
    return examples


SEMEVAL_SPANS_TEST = Path("toxic_spans") / "semeval2021_tsd_test.csv"


def semeval_span_test(root: Path) -> list[tuple[str, list[int]]]:
    """The official SemEval-2021 Task 5 test posts: (text, gold toxic character offsets)."""
    return semeval_spans(root, "test")


SEMEVAL_SPAN_FILES = {"train": "semeval2021_tsd_train.csv.gz", "trial": "semeval2021_tsd_trial.csv",
                      "test": "semeval2021_tsd_test.csv"}


def semeval_spans(root: Path, part: str) -> list[tuple[str, list[int]]]:
    """An official SemEval-2021 Task 5 file ("train", "trial" or "test"): (text, gold toxic character offsets)."""
    if part not in SEMEVAL_SPAN_FILES:
        raise DataError(f"SemEval span file must be one of {sorted(SEMEVAL_SPAN_FILES)}, got {part!r}")
    path = _require(root / "toxic_spans" / SEMEVAL_SPAN_FILES[part])
    out = []
    for i, row in enumerate(_read_csv(path)):
        try:
            offsets = [int(v) for v in json.loads(row["spans"])]
        except (ValueError, TypeError, KeyError) as e:
            raise DataError(f"{path}: row {i + 2}: spans is not a list of offsets ({e})") from None
        out.append((row["text"], offsets))
    return out


def reserved_benchmark_keys(root: Path) -> set[str]:
    """Dedup keys of texts that belong to an external benchmark's test set and so may not reach any split:
    the SemEval-2021 toxic-spans test posts are also among toxic_spans' 16,100 Civil Comments posts, and the
    span F1 (benchmarks/spans.py) is only honest if none of them trains, calibrates or tunes anything."""
    if not (root / SEMEVAL_SPANS_TEST).is_file():
        return set()
    return {normalise_for_dedup(text) or text for text, _ in semeval_span_test(root)}


def held_back_ids(examples: list[Example]) -> set[str]:
    """Ids of the items no reviewer judgment may train on: the test split (reporting) and the gate split."""
    return {e.id for e in examples if e.split in ("test", "gate")}


def remap_to_taxonomy(ex: Example, taxonomy: Taxonomy) -> Example:
    """Keep the taxonomy's categories; a category no source knows is unknown everywhere."""
    ex.labels = {c: ex.labels.get(c) for c in taxonomy.names}
    return ex


def label_matrix(examples: list[Example], categories: list[str]):
    """(targets, mask) as float32 numpy arrays of shape (N, C); unknown labels have mask 0."""
    import numpy as np

    y = np.zeros((len(examples), len(categories)), dtype=np.float32)
    m = np.zeros_like(y)
    for i, ex in enumerate(examples):
        for j, c in enumerate(categories):
            v = ex.labels.get(c)
            if v is not None:
                y[i, j], m[i, j] = v, 1.0
    return y, m


def stats(examples: list[Example], categories: list[str]) -> list[dict]:
    """Rows of (source, split, n, and per category: positives (soft >= 0.5) / labelled)."""
    rows: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for ex in examples:
        r = rows[(ex.source, ex.split)]
        r["n"] += 1
        for c in categories:
            v = ex.labels.get(c)
            if v is not None:
                r[f"{c}_known"] += 1
                r[f"{c}_pos"] += int(v >= 0.5)
    out = []
    for (source, split), r in sorted(rows.items(), key=lambda kv: (kv[0][0], SPLITS.index(kv[0][1]))):
        out.append({"source": source, "split": split, "n": r["n"],
                    **{c: (r[f"{c}_pos"], r[f"{c}_known"]) for c in categories}})
    return out


def stats_tables(examples: list[Example], categories: list[str]):
    """`moderate data stats`: counts per source and split (positives/labelled per category), and the rules."""
    from rich.table import Table

    table = Table(title=f"{len(examples)} examples after deduplication (cells: positives / labelled; blank = unknown, masked)")
    for col in ("source", "split", "n", *categories):
        table.add_column(col, justify="left" if col in ("source", "split") else "right")
    for row in stats(examples, categories):
        table.add_row(row["source"], row["split"], str(row["n"]), *[(f"{row[c][0]}/{row[c][1]}" if row[c][1] else "") for c in categories])
    rules = Table(title="What each source may teach (moderation/training/data.py SOURCE_TABLE)")
    for col in ("source", "judged", "assumed negative", "negative if clean", "license"):
        rules.add_column(col)
    for name, rule in SOURCE_TABLE.items():
        rules.add_row(name, ", ".join(rule.labels), ", ".join(rule.assumed_negative), ", ".join(rule.negative_if_clean), rule.license)
    return table, rules
