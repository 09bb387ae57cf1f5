"""One iteration of the human-feedback loop, end to end (`moderate loop`):

    1. select   score candidate items with the production package; pick `n` new ones by a queue strategy
    2. push     send them to Label Studio with K proposals each
    3. review   wait for reviewers (or let simulated reviewers work through the real API)
    4. pull     validated annotations -> the feedback store (all iterations' judgments accumulate)
    5. reward   Bradley-Terry reward model on the store's preference pairs (held-out items measured)
    6. improve  RL against the reward model (optionally after SFT on the corrections), LoRA, KL leash
    7. export   ONNX INT8 package with its parity gate; metrics on the test split (reported, never used to
                choose a model)
    8. gate     both packages score the gate split; promote only if reviewer utility improves beyond noise
                on the gate items of the sources the reviews came from, does not fall on the rest, and no
                category's AUPRC falls beyond noise (paired bootstrap, `gate.py`); otherwise the candidate
                is kept, marked rejected, with the reasons
Judgments of test- or gate-split items never reach the reward model, SFT or RL.

Every step logs what it did and how long it took; the result (a dict) is also written next to the
candidate as loop_report.json.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from moderation.errors import ConfigError, check_config
from moderation.training.gate import MIN_FOCUS_ITEMS
from moderation.training.improve import ImproveConfig
from moderation.training.rl import RLConfig


@dataclass
class LoopConfig:
    project: str = "Moderation review"
    n: int = 1000  # items to push (the review budget of this iteration)
    strategy: str = "uncertainty"
    k: int = 4
    simulate: bool = False
    reviewers: int = 3
    noise: float = 0.05
    rank_rule: str = "agreement"  # how simulated reviewers order proposals (labeling.simulate.RANK_RULES)
    wait_seconds: float = 0.0  # without --simulate: how long to wait for human reviews
    poll_seconds: float = 30.0
    # "sft" (corrections, leashed elsewhere) | "rl" | "sft+rl". SFT is the default because it won the adaptation
    # benchmark: RL closed less of the gap on YouTube spam and moved other sources most (docs/loop.md)
    method: str = "sft"
    unlabelled: int = 1000  # unreviewed candidate texts added to the RL pool
    improve: ImproveConfig = field(default_factory=lambda: ImproveConfig(rl=RLConfig(steps=100)))
    max_auprc_drop: float = 0.01
    always_export: bool = False  # export and gate even when training kept its starting point (tests, audits)
    # Adapt for one platform (a dataset source, or the platform a file's items come from): train on its reviews
    # only and ship the result as that platform's own graph next to production's unchanged one (routed_package).
    # None: one model for all.
    platform: str | None = None
    seed: int = 0

    def __post_init__(self):
        from labeling.queue import STRATEGIES
        from labeling.simulate import RANK_RULES

        check_config(self, positive=("n", "reviewers"), unit=("noise", "max_auprc_drop"),
                     choices={"method": METHODS, "strategy": STRATEGIES, "rank_rule": tuple(RANK_RULES)})
        if self.k < 2:
            raise ConfigError(f"k must be at least 2 proposals per item, got {self.k}")
        if self.platform is not None and not PLATFORM_NAME.fullmatch(self.platform):
            raise ConfigError(f"platform {self.platform!r} must be 1-64 characters of a-z, 0-9, '_', '.', '-', "
                              "starting with a letter or digit")


METHODS = ("rl", "sft+rl", "sft")
PLATFORM_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def run_iteration(cfg: LoopConfig, client, url: str, registry, store, examples, taxonomy, candidates,
                  policy_checkpoint: Path | None = None, export_config=None, log=print) -> dict:
    """Run one iteration. `candidates` are Examples to choose review items from (their labels are only
    read by simulated reviewers); `examples` are all examples (validation/test splits feed the export)."""
    from labeling.annotations import export_tasks, tasks_to_judgments
    from labeling.queue import QueueItem, ensure_project, existing_item_ids, push, select
    from labeling.simulate import simulatable_examples, simulate
    from moderation.runtime import Moderator
    from moderation.training.export import ExportConfig, ParityError, export_package
    from moderation.training.improve import embedding_table, feedback_data, fit_reward, rl_on_feedback, sft_on_corrections
    from moderation.training.data import held_back_ids
    from moderation.training.policy import PolicyModel
    from moderation.training.registry import RegistryError, package_metrics

    timings: dict[str, float] = {}
    report: dict = {"config": {k: v for k, v in asdict(cfg).items() if k != "improve"}}

    def step(name: str, started: float) -> None:
        timings[name] = round(time.time() - started, 1)
        log(f"[loop] {name}: {timings[name]:.0f}s")

    prod = registry.production()
    if prod is None:
        raise RuntimeError(f"the registry at {registry.root} has no production model; register one first "
                           "(moderate registry add models/default)")
    checkpoint = policy_checkpoint or registry.resolve(prod.checkpoint) or production_checkpoint(registry, prod, log)
    if not (Path(checkpoint) / "policy_config.json").is_file():
        raise RuntimeError(f"{checkpoint} is not a torch policy checkpoint (no policy_config.json) to start RL from")
    version = registry.next_version()
    report.update(version=version, parent=prod.version)

    # 1-2. select and push
    t = time.time()
    mod = Moderator.load(registry.resolve(prod.package))
    proj = ensure_project(client, url, cfg.project, taxonomy)
    already = existing_item_ids(client, url, proj.id)
    fresh = [e for e in candidates if e.id not in already]
    log(f"[loop] scoring {len(fresh)} candidate items with production {prod.version}…")
    scores = mod.score([e.text for e in fresh]) if fresh else np.zeros((0, len(taxonomy)))
    chosen = select([QueueItem(e.id, e.text, s, e.source) for e, s in zip(fresh, scores)], cfg.n, cfg.strategy,
                    mod.review_thresholds, k=cfg.k, seed=cfg.seed)
    report["push"] = push(client, url, proj.id, chosen, taxonomy, mod.version, mod.review_thresholds, k=cfg.k, seed=cfg.seed)
    step("select+push", t)

    # 3. reviews
    t = time.time()
    if cfg.simulate:
        report["review"] = simulate(client, url, proj.id, simulatable_examples(examples), taxonomy, reviewers=cfg.reviewers,
                                    noise=cfg.noise, seed=cfg.seed, rule=cfg.rank_rule)
    elif cfg.wait_seconds > 0:
        report["review"] = _wait_for_reviews(client, url, proj.id, {it.item_id for it in chosen}, cfg, log)
    step("review", t)

    # 4. pull
    t = time.time()
    tasks = export_tasks(client, url, proj.id)
    judgments, rejected = tasks_to_judgments(tasks, taxonomy)
    report["pull"] = {"annotations": len(judgments) + len(rejected), "new": store.add(judgments), "rejected": len(rejected),
                      **store.stats()}
    step("pull", t)

    # 5. reward model on everything reviewers have said so far
    t = time.time()
    icfg = replace(cfg.improve, seed=cfg.seed)  # callers' configs are never changed
    # Judgments of test or gate items (however they reached the store) never train anything.
    judgments, held_back, gate_share = store.judgments(), held_back_ids(examples), []
    if cfg.platform is not None:  # a platform's graph learns from its own reviews only
        source = {e.id: e.source for e in examples} | task_sources(tasks)  # a file's items: the source they were pushed as
        judgments = [j for j in judgments if source.get(j.item_id) == cfg.platform]
        if not any(e.split == "gate" and e.source == cfg.platform for e in examples):
            # A platform of the team's own (a file's items) has no gate split: a stable share of its reviews is
            # kept aside to judge candidates and never trains one, in this iteration or any later one.
            held_back |= {j.item_id for j in judgments if in_gate_share(j.item_id)}
            gate_share = gate_share_examples(judgments, cfg.platform, taxonomy.names)
            report["gate_share"] = {"items": len(gate_share), "one_in": GATE_SHARE}
            if len(gate_share) < MIN_FOCUS_ITEMS:
                report["unchanged"] = (f"platform {cfg.platform} has {len(gate_share)} reviewed items in its gate share (one in "
                                       f"{GATE_SHARE} of its reviewed items judges candidates; {MIN_FOCUS_ITEMS} are needed): "
                                       f"review about {GATE_SHARE * (MIN_FOCUS_ITEMS - len(gate_share))} more of its items")
                report["promoted"], report["timings"] = False, timings
                report["seconds"] = round(sum(timings.values()), 1)
                log(f"[loop] no candidate: {report['unchanged']}")
                return report
    fb = feedback_data(judgments, len(taxonomy), icfg.holdout, cfg.seed, [e.text for e in fresh], cfg.unlabelled, held_back)
    # the platform the reviews came from
    reviewed = {cfg.platform} if cfg.platform is not None else reviewed_sources(examples, fb.train_js + fb.held_js)
    report["reviewed_sources"] = sorted(reviewed)
    policy = PolicyModel.load(checkpoint).eval()
    embed = embedding_table(policy, fb.rl_pool + fb.held_texts)
    reward, report["reward_model"] = fit_reward(policy, fb.train_js, fb.held_js, taxonomy, icfg, embeddings=embed, log=log)
    out_ckpt = registry.root / "checkpoints" / version
    reward.save(out_ckpt / "reward")
    step("reward", t)

    # 6. improve the policy
    t = time.time()
    replay = training_replay(examples, cfg.seed, exclude_sources=reviewed)
    if cfg.method in ("sft", "sft+rl"):
        report["sft"] = sft_on_corrections(policy, fb.train_texts, fb.train_gold, fb.train_judged, fb.held_texts, fb.held_gold,
                                           fb.held_judged, taxonomy, icfg, log=log, replay=replay)
    if cfg.method in ("rl", "sft+rl"):
        # RL is held by the same leash on other sources' texts: on the adaptation benchmark (3 seeds) it closed
        # 0.35 / 0.59 of the YouTube gap against plain RL's -0.28 / 0.44, with 1.7 falls per seed against 2.7
        hist = rl_on_feedback(policy, reward, embed, fb.rl_pool, fb.held_texts, fb.held_gold, fb.held_judged, taxonomy, icfg,
                              out_dir=out_ckpt, log=log, leash_texts=replay.texts if replay is not None else None)
        report["rl"] = {"best_step": hist.best_step, "stopped_for_reward_hacking": hist.stopped_for_reward_hacking,
                        "rows": hist.rows}
    policy.save(out_ckpt)
    step("improve", t)
    unchanged = unchanged_reason(report, cfg.method)
    if unchanged and not cfg.always_export:
        # Nothing beat the starting point on the held-out reviewed items: the candidate is production again.
        # Exporting and gating it would take a quarter of an hour to say so.
        report["unchanged"] = f"{unchanged}, on {len(fb.held_texts)} held-out reviewed items"
        report["promoted"], report["timings"] = False, timings
        report["seconds"] = round(sum(timings.values()), 1)
        log(f"[loop] no candidate: {report['unchanged']}")
        return report

    # 7. export (its own parity gate), metrics on test
    t = time.time()
    package = registry.root / "packages" / version
    exported = package if cfg.platform is None else registry.root / "work" / f"{version}-{cfg.platform}"
    base_ecfg = replace(export_config or ExportConfig(), version=version)
    validation, test = [e for e in examples if e.split == "validation"], [e for e in examples if e.split == "test"]
    gate_items = [e for e in examples if e.split == "gate"] + gate_share
    # RL sharpens some logits, and INT8 can then move a probability past the parity gate's bound (MAX_ABS_DIFF:
    # 0.1 for the default int8, 0.02 for int8-weights); the
    # candidate is then exported exactly (fp32: ~3x larger, slower) and still judged on its merits.
    attempts = [base_ecfg.quantization] + (["none"] if base_ecfg.quantization != "none" else [])
    report["export"] = {}
    for i, quantization in enumerate(attempts):
        ecfg = replace(base_ecfg, quantization=quantization)
        try:
            export_package(out_ckpt, exported, taxonomy, validation, test, ecfg, log=log)
            report["export"]["quantization"] = quantization
            break
        except ParityError as e:
            if i + 1 < len(attempts):
                log(f"[loop] {quantization} export refused by the parity gate; exporting in fp32 instead")
                report["export"]["int8_refused"] = str(e)
                continue
            report["export"]["refused"] = str(e)
            step("export", t)
            report["promoted"], report["timings"] = False, timings
            report["seconds"] = round(sum(timings.values()), 1)
            return report
    if cfg.platform is not None:
        routed_package(registry.resolve(prod.package), exported, package, version, cfg.platform, reviewed,
                       parent=prod.version, reviews=len(fb.train_js) + len(fb.held_js), log=log)
        shutil.rmtree(exported, ignore_errors=True)
        report["platform"] = {"name": cfg.platform, "sources": sorted(reviewed), "checkpoint": str(out_ckpt)}
    step("export", t)

    # 8. register and gate (a routed candidate's main graph is production's: so is its checkpoint)
    v = registry.add(version, package, package_metrics(package), checkpoint=out_ckpt if cfg.platform is None else checkpoint,
                     parent=prod.version,
                     note=f"loop: {cfg.method}, {report['pull']['corrections']} corrections"
                          + (f", adapted for platform {cfg.platform}" if cfg.platform else ""))
    try:
        # a gate share is judged on what its reviewers judged; a dataset source on what its annotators labelled
        focus_categories = judged_categories(gate_share, taxonomy.names) if gate_share else None
        result = registry.promote(version, max_auprc_drop=cfg.max_auprc_drop, gate_examples=gate_items, focus_sources=reviewed,
                                  focus_categories=focus_categories)
    except RegistryError as e:
        raise RuntimeError(str(e)) from None
    report["gate"] = asdict(result)
    report["promoted"] = result.passed
    report["metrics"] = {"candidate": v.metrics, "production_before": prod.metrics}
    report["timings"] = timings
    report["seconds"] = round(sum(timings.values()), 1)
    (package / "loop_report.json").write_text(json.dumps(report, indent=2, default=float))
    return report


def routed_package(production: Path, exported: Path, out: Path, version: str, platform: str, sources, parent: str,
                   reviews: int, log=print) -> Path:
    """The candidate of a platform iteration: production's package unchanged, plus the fine-tuned graph as
    `platforms/<platform>.onnx`, which scores that platform's texts (`Moderator.load(platform=...)`). On the
    adaptation benchmark the same fine-tuned model closed 0.86 / 0.78 of the OLID / YouTube gaps either way,
    but used for every text it moved other platforms (YouTube's "spam" flagged Gab posts with links) and the
    gate refused it in 4 of 6 seeds; routed, nothing else moves and the gate promoted it in 6 of 6
    (docs/loop.md). The platform's own export report sits beside its graph."""
    from moderation.package import read_manifest, write_manifest

    manifest = read_manifest(production)
    shutil.copytree(production, out, ignore=shutil.ignore_patterns("loop_report.json"))
    graph = f"platforms/{platform}.onnx"
    (out / "platforms").mkdir(exist_ok=True)
    shutil.copyfile(exported / "model.onnx", out / graph)
    if (exported / "export_report.json").is_file():
        shutil.copyfile(exported / "export_report.json", out / "platforms" / f"{platform}.export_report.json")
    info = {k: val for k, val in manifest.items() if k not in ("format", "files")}
    exported_manifest = read_manifest(exported)
    info["version"] = version
    info["platforms"] = {**(info.get("platforms") or {}),
                         platform: {"graph": graph, "sources": sorted(sources), "parent": parent, "reviews": reviews,
                                    "quantization": exported_manifest.get("quantization")}}
    write_manifest(out, info)
    log(f"[loop] candidate {version}: production {parent}'s graph for every text, {graph} for {platform}'s")
    return out


REPLAY_ITEMS = 20000
LEASH_RATIO = 3.0  # leashed texts per correction in each SFT batch


def training_replay(examples, seed: int, exclude_sources: set[str] = frozenset()):
    """Train-split texts of the sources the reviews did *not* come from, on which SFT holds the policy where
    it started (improve.Replay with the leash, three per correction). On the adaptation benchmark this beat
    fine-tuning alone, label replay and a one-to-one leash: 300 OLID corrections closed 0.86 of the gap to the
    oracle with 0.3 other-source falls per seed (label replay: 0.35, 1.0; docs/loop.md). The reviewed platform's own texts are left out: holding the model to its
    old behaviour there would fight the corrections."""
    from moderation.training.improve import Replay

    train = [e for e in examples if e.split == "train" and e.source not in exclude_sources]
    if not train:
        return None
    pick = np.random.default_rng(seed).choice(len(train), min(REPLAY_ITEMS, len(train)), replace=False)
    return Replay([train[i].text for i in sorted(pick)], ratio=LEASH_RATIO, leash=True)


GATE_SHARE = 4  # one in four of a file platform's reviewed items judges candidates instead of training them


def in_gate_share(item_id: str) -> bool:
    """Whether an item of a file platform belongs to its gate share: a hash of the id alone, so an item is in it
    or out of it in every iteration, whatever else was reviewed."""
    return hashlib.sha256(f"gate-share:{item_id}".encode()).digest()[0] % GATE_SHARE == 0


def gate_share_examples(judgments, platform: str, categories: list[str]):
    """The gate share's items as gate examples: the reviewers' consensus on the categories they judged
    (unjudged ones stay unknown, so they neither count for nor against a candidate)."""
    from moderation.training.data import Example
    from moderation.training.improve import consensus

    share = [j for j in judgments if in_gate_share(j.item_id)]
    ids = list(dict.fromkeys(j.item_id for j in share if j.status == "done" and j.gold is not None))  # consensus's order
    texts, gold, judged = consensus(share, len(categories))
    return [Example(id=i, text=t, source=platform, split="gate",
                    labels={c: float(g[k]) if m[k] else None for k, c in enumerate(categories)})
            for i, t, g, m in zip(ids, texts, gold, judged)]


def judged_categories(examples, categories: list[str]) -> np.ndarray:
    return np.array([any(e.labels.get(c) is not None for e in examples) for c in categories])


def task_sources(tasks: list[dict]) -> dict[str, str]:
    """Item id -> the source it was pushed as (a dataset's name, or the platform a file's items came from)."""
    out = {}
    for t in tasks:
        data = t.get("data") or {}
        if data.get("item_id") is not None and data.get("source"):
            out[str(data["item_id"])] = str(data["source"])
    return out


def reviewed_sources(examples, judgments) -> set[str]:
    """The sources the learned-from reviews came from: the platform the gate asks the candidate to improve."""
    source = {e.id: e.source for e in examples}
    return {source[j.item_id] for j in judgments if j.item_id in source}


def unchanged_reason(report: dict, method: str) -> str | None:
    """Why the improved policy is the starting point itself (every training step of `method` kept its start,
    judged on held-out reviewed items), or None when something moved."""
    kept = []
    if "sft" in method.split("+") and report.get("sft", {}).get("best_epoch") == 0:
        kept.append("SFT's best epoch was its start")
    if "rl" in method.split("+") and report.get("rl", {}).get("best_step") == 0:
        kept.append("RL's best step was its start")
    return "; ".join(kept) if len(kept) == len(method.split("+")) else None


def _wait_for_reviews(client, url: str, project_id: int, pushed: set[str], cfg: LoopConfig, log) -> dict:
    """Poll until every pushed item has a submitted review or `wait_seconds` pass (Ctrl-C stops waiting)."""
    from tqdm import tqdm

    from labeling.client import list_tasks

    deadline = time.time() + cfg.wait_seconds
    done = 0
    with tqdm(total=len(pushed), desc="waiting for reviews", unit="item") as bar:
        try:
            while True:
                tasks = list_tasks(client, url, project_id)
                now = sum(1 for t in tasks if str((t.data or {}).get("item_id")) in pushed
                          and (t.total_annotations or 0) + (t.cancelled_annotations or 0) > 0)
                bar.update(now - done)
                done = now
                if done >= len(pushed) or time.time() >= deadline:
                    break
                time.sleep(min(cfg.poll_seconds, max(0.0, deadline - time.time())))
        except KeyboardInterrupt:
            log("[loop] stopped waiting (Ctrl-C); training on the reviews in so far")
    return {"reviewed": done, "pushed": len(pushed)}


def verdict(report: dict) -> str:
    """A few lines a person reads at the end of `moderate loop`: what happened, why, what to try next."""
    version, parent = report.get("version"), report.get("parent")
    export = report.get("export") or {}
    if "refused" in export:
        return (f"NOT PROMOTED: candidate {version} was not exported: {export['refused']}\n"
                f"  production stays {parent}.\n"
                "  next: the candidate moved too far for the export's parity gate; retry with fewer --rl-steps "
                "or a larger --kl-beta (e.g. --rl-steps 50 --kl-beta 0.2).")
    used_rl = "rl" in report
    if report.get("unchanged"):
        return (f"NOT PROMOTED: no candidate {version}: {report['unchanged']}; production stays {parent}.\n"
                "  next: review more items (--n 1000) so the held-out reviews can tell a better model"
                + (", or try --method sft" if used_rl else ""))
    gate = report.get("gate") or {}
    reasons = gate.get("reasons") or []
    if report.get("promoted"):
        return (f"PROMOTED: {version} is now in production (was {parent}). " + "; ".join(reasons) + "\n"
                "  undo with: moderate registry rollback")
    hints = []
    if any("did not improve" in r for r in reasons):
        learner = "the reward model" if used_rl else "the fine-tuning"
        hints.append(f"more reviews give {learner} more to learn from (--n 2000), or a different queue "
                     "(--strategy random measures errors without the queue's bias)")
    if any(k in r for r in reasons for k in ("may have fallen", "AUPRC fell", "fell beyond noise")):
        hints.append("stay closer to the current model (--kl-beta 0.2, --rl-steps 50) or learn from the corrections "
                     "with the leash (--method sft)" if used_rl else
                     "the gain on the reviewed platform cost something elsewhere: the leash holds other sources but "
                     "one category cannot mean two things; look at which sources moved (`moderate registry list "
                     "--json`) before promoting with --force")
    lines = [f"NOT PROMOTED: the gate refused {version}; production stays {parent}."]
    lines += [f"  - {r}" for r in reasons]
    lines += [f"  next: {h}" for h in hints or ["inspect the candidate with `moderate registry list`; "
                                                "promote it anyway with `moderate registry promote VERSION --force`"]]
    return "\n".join(lines)


def production_checkpoint(registry, prod, log=print) -> Path:
    """Production's torch checkpoint, rebuilt once from the policy its package carries (policy_delta.py) and
    remembered in the registry; a package without one needs --policy."""
    from moderation.training.policy_delta import checkpoint_from_package, has_policy

    package = registry.resolve(prod.package)
    if not has_policy(package):
        raise RuntimeError(f"production {prod.version} has no torch checkpoint to start RL from, and its package carries "
                           "no torch policy (exported before 0.4.2); pass --policy CHECKPOINT")
    out = registry.root / "checkpoints" / prod.version
    log(f"[loop] rebuilding production {prod.version}'s torch policy from its package into {out}…")
    checkpoint = checkpoint_from_package(package, out)
    prod.checkpoint = registry._rel(checkpoint)
    registry.save()
    return checkpoint


def register_shipped_model(registry, log=print):
    """An empty registry starts from the shipped model package (models/default), as production."""
    from moderation.runtime import default_model_path
    from moderation.training.registry import add_package

    package = default_model_path()
    log(f"[loop] the registry at {registry.root} is empty: registering the shipped model {package} as production")
    v = add_package(registry, package, None, None, lambda tax: [], log=log)
    registry.promote(v.version)
    return registry.production()


def run_from_registry(cfg: LoopConfig, client, url: str, registry, store_dir: Path, data_dir, rows=None, source: str | None = None,
                      policy_checkpoint: Path | None = None, log=print) -> dict:
    """`moderate loop`: one iteration starting from the registry's production model. Candidates are `rows`
    (items from a file named `source`; with `cfg.platform`, that platform's items) or else the validation split
    (with --simulate, only items whose source kept each annotator's labels; with `cfg.platform`, only that
    source's items)."""
    from moderation.errors import ModerationError
    from moderation.feedback import FeedbackStore
    from moderation.taxonomy import load_taxonomy
    from moderation.training.data import Example, load_examples

    prod = registry.production() or register_shipped_model(registry, log)
    taxonomy = load_taxonomy(registry.resolve(prod.package) / "taxonomy.toml")
    examples = load_examples(data_dir, taxonomy=taxonomy, seed=0)
    if cfg.platform is not None and rows is None:
        from labeling.simulate import with_adjudicated_annotator

        known = sorted({e.source for e in examples})
        if cfg.platform not in known:
            raise ModerationError(f"--platform {cfg.platform!r} is not a dataset source; with dataset candidates it names the "
                                  f"source whose items are reviewed (known: {', '.join(known)})")
        # sources that publish one adjudicated label per item (OLID, YouTube spam) replay it, judged categories only
        examples = [with_adjudicated_annotator(e) if e.source == cfg.platform else e for e in examples]
    if rows is not None:
        # with --platform, the file's items are that platform's: reviews of them train its graph, and a share of
        # them judges it (gate_share_examples)
        candidates = [Example(id=r.id, text=r.text, source=cfg.platform or source or "input", split="candidate", labels={})
                      for r in rows]
    else:
        candidates = [e for e in examples if e.split == "validation" and (e.annotators or not cfg.simulate)
                      and (cfg.platform is None or e.source == cfg.platform)]
    try:
        return run_iteration(cfg, client, url, registry, FeedbackStore(store_dir, taxonomy.names), examples, taxonomy, candidates,
                             policy_checkpoint=policy_checkpoint, log=log)
    except ModerationError:
        raise
    except (RuntimeError, ValueError) as e:  # a registry refusal or a missing checkpoint, said in one line
        raise ModerationError(str(e)) from None
