"""The registry, its promotion gate, and one whole loop iteration through a real Label Studio."""

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import cli
from moderation.training.registry import Registry, RegistryError

runner = CliRunner()


def _metrics(utility, **auprc):
    base = {"toxic": 0.9, "hate": 0.4, "violence": 0.4, "sexual": 0.7, "self_harm": 0.95, "misleading": 0.8, "spam": 0.97}
    base.update(auprc)
    return {"utility_cost_optimal": utility, "auprc": base, "macro_auprc": float(np.mean(list(base.values())))}


def _package_with(tmp_path, tiny_package, name, utility_delta, auprc_delta):
    """A copy of the tiny package whose export report claims other test metrics (the report is not hashed)."""
    out = tmp_path / name
    shutil.copytree(tiny_package, out)
    report = json.loads((out / "export_report.json").read_text())
    report["test"]["utility_cost_optimal"] += utility_delta
    for c, delta in auprc_delta.items():
        report["test"]["categories"][c]["auprc"] = (report["test"]["categories"][c]["auprc"] or 0.5) + delta
    (out / "export_report.json").write_text(json.dumps(report))
    return out


def test_registry_cli_gates_on_the_gate_split_forces_and_rolls_back(tmp_path, tiny_package):
    reg_dir = tmp_path / "registry"
    first = runner.invoke(cli.app, ["registry", "add", str(tiny_package), "--version", "1.0.0", "--registry", str(reg_dir)])
    assert first.exit_code == 0, first.output
    assert "1.0.0 is in production (first version: nothing to compare with)" in first.output
    # The same model, claiming far better test metrics: the gate scores both on the gate split and sees no gain.
    claims = _package_with(tmp_path, tiny_package, "claims", +0.5, {"hate": +0.3})
    r = runner.invoke(cli.app, ["registry", "add", str(claims), "--version", "1.0.1", "--registry", str(reg_dir)])
    assert r.exit_code == 4, r.output
    assert "gate: 1.0.1 and production 1.0.0 score" in r.output and "gate-split texts" in r.output
    assert "gate refused 1.0.1" in r.output and "reviewer utility did not improve beyond noise: +0.0000" in r.output
    reg = Registry(reg_dir)
    assert reg.production().version == "1.0.0" and reg.get("1.0.1").status == "rejected"
    assert reg.get("1.0.1").gate["n_items"] > 1000  # the real gate split
    assert (reg_dir / "production").resolve() == tiny_package.resolve()
    # naming the reviewed platform: the same model is no better on its gate items either; an unknown source is refused
    r = runner.invoke(cli.app, ["registry", "promote", "1.0.1", "--reviewed-source", "olid_v1", "--registry", str(reg_dir)])
    assert r.exit_code == 4 and "the reviewed platform's 399 gate items (toxic) did not improve beyond noise" in r.output, r.output
    r = runner.invoke(cli.app, ["registry", "promote", "1.0.1", "--reviewed-source", "myspace", "--registry", str(reg_dir)])
    assert r.exit_code == 2 and "--reviewed-source myspace: no gate-split items of that source" in r.output, r.output
    # --force overrides the gate, and says so in the registry
    r = runner.invoke(cli.app, ["registry", "promote", "1.0.1", "--force", "--registry", str(reg_dir)])
    assert r.exit_code == 0 and "--force" in Registry(reg_dir).get("1.0.1").note
    assert (reg_dir / "production").resolve() == claims.resolve()
    assert runner.invoke(cli.app, ["registry", "list", "--registry", str(reg_dir)]).exit_code == 0
    listing = json.loads(runner.invoke(cli.app, ["registry", "list", "--json", "--registry", str(reg_dir)]).output)
    assert listing["production"] == "1.0.1" and listing["history"] == ["1.0.0", "1.0.1"]
    assert [v["status"] for v in listing["versions"]] == ["retired", "production"]
    r = runner.invoke(cli.app, ["registry", "rollback", "--registry", str(reg_dir)])
    assert r.exit_code == 0, r.output
    assert Registry(reg_dir).production().version == "1.0.0"
    assert (reg_dir / "production").resolve() == tiny_package.resolve()
    with pytest.raises(RegistryError, match="nothing to roll back"):
        Registry(reg_dir).rollback()


def test_metrics_are_measured_when_the_export_report_predates_them(tmp_path, tiny_package, small_examples):
    from moderation.training.registry import has_utility, package_metrics

    old = _package_with(tmp_path, tiny_package, "old", 0.0, {})
    report = json.loads((old / "export_report.json").read_text())
    del report["test"]["utility_cost_optimal"]
    (old / "export_report.json").write_text(json.dumps(report))
    assert not has_utility(old)
    with pytest.raises(RegistryError, match="measure it"):
        package_metrics(old)
    measured = package_metrics(old, small_examples["test"])
    assert measured["utility_cost_optimal"] == pytest.approx(json.loads((tiny_package / "export_report.json").read_text())["test"]["utility_cost_optimal"])


def test_reward_model_starts_at_the_policys_own_beliefs(taxonomy):
    """Before any review, the reward model's best label set is the policy's cost-optimal decision."""
    import itertools

    from moderation.training.reward import RewardConfig, RewardModel, embed_texts
    from tests.conftest import make_tiny_policy

    policy = make_tiny_policy(taxonomy.names, seed=5).eval()
    texts = ["you are an idiot", "win a free prize now", "the meeting is at noon", "I will hurt you"]
    emb = embed_texts(policy, texts)
    rm = RewardModel(RewardConfig(embed_dim=emb.shape[1], n_categories=len(taxonomy), cost_fn=tuple(taxonomy.cost_fn),
                                  cost_fp=tuple(taxonomy.cost_fp)))
    rm.init_from_policy(policy)
    with torch.no_grad():
        z = policy.text_logits(texts, max_windows=1)
        assert torch.allclose(rm.belief(torch.from_numpy(emb)), z, atol=1e-4)
        sets = torch.tensor(list(itertools.product([0, 1], repeat=len(taxonomy))), dtype=torch.float32)
        r = rm(torch.from_numpy(emb), sets.unsqueeze(0).expand(len(texts), -1, -1))
    best = sets[r.argmax(1)].numpy()
    decision = (torch.sigmoid(z).numpy() >= taxonomy.cost_optimal_thresholds()).astype(np.float32)
    assert (best == decision).all()


def test_one_loop_iteration_end_to_end(label_studio, tiny_package, tiny_checkpoint, small_examples, examples, taxonomy, tmp_path):
    """select -> push -> simulated reviews (real API) -> pull -> reward -> RL -> export -> gate -> registry."""
    from labeling.client import connect
    from moderation.feedback import FeedbackStore
    from moderation.training.export import ExportConfig
    from moderation.training.improve import ImproveConfig
    from moderation.training.loop import LoopConfig, run_iteration
    from moderation.training.rl import RLConfig

    creds, _ = label_studio
    reg = Registry(tmp_path / "registry")
    reg.add("0.1.0", tiny_package, _metrics(-0.3), checkpoint=tiny_checkpoint)
    reg.promote("0.1.0")
    candidates = [e for e in examples if e.annotators and e.split == "validation"][:200]
    small = (small_examples["validation"] + small_examples["gate"] + small_examples["test"]
             + [c for c in candidates if c not in small_examples["validation"]])
    # train-split texts of a source nobody reviews here: what RL (and SFT) are leashed on
    small += [e for e in small_examples["train"] if e.source == "sms_spam_collection"][:20]
    # a judgment of a test item that reached the store some other way never trains anything
    from moderation.feedback import Judgment

    leaked = small_examples["test"][0]
    FeedbackStore(tmp_path / "feedback", taxonomy.names).add([Judgment(
        "elsewhere:1", leaked.id, leaked.text, "someone", "0.1.0", gold=(1,) * len(taxonomy),
        ranking=[(0,) * len(taxonomy), (1,) * len(taxonomy)])])
    cfg = LoopConfig(project="loop test", n=30, simulate=True, method="rl", unlabelled=20, always_export=True,
                     improve=ImproveConfig(rl=RLConfig(steps=4, batch_texts=8, group_size=4, eval_every=2)))
    store = FeedbackStore(tmp_path / "feedback", taxonomy.names)
    report = run_iteration(cfg, connect(creds), creds.url, reg, store, small, taxonomy, candidates,
                           export_config=ExportConfig(parity_examples=50, max_auprc_drop=1.0), log=lambda *a: None)
    assert report["push"]["created"] == 30
    assert report["pull"]["corrections"] == 31 and report["pull"]["rejected"] == 0  # 30 reviews + the leaked one
    assert report["reward_model"]["items_train"] + report["reward_model"]["items_heldout"] == 30  # not 31
    assert 0.0 <= report["reward_model"]["accuracy_reward_model"] <= 1.0
    steps = [row for row in report["rl"]["rows"] if row["step"] > 0]
    assert steps and all("leash_kl" in row for row in steps)  # RL held on the other sources' texts
    assert report["rl"]["rows"] and set(report["timings"]) >= {"select+push", "review", "pull", "reward", "improve", "export"}
    reg = Registry(tmp_path / "registry")
    cand = reg.get(report["version"])
    assert cand.parent == "0.1.0" and cand.metrics["n_items"] == len(small_examples["test"])
    # the gate compared both models on the gate split, and the registry did what it decided
    assert report["gate"]["n_items"] == len(small_examples["gate"]) and report["gate"]["utility_interval"] is not None
    assert report["promoted"] == report["gate"]["passed"]
    # the gate was told which platform the reviews came from (too few of its gate items here: it says so)
    assert report["gate"]["focus"] is not None or any("of the reviewed platform" in n for n in report["gate"]["notes"])
    assert reg.production().version == (report["version"] if report["promoted"] else "0.1.0")
    assert cand.status == ("production" if report["promoted"] else "rejected")
    assert (reg.root / "production" / "manifest.json").is_file()
    assert (reg.resolve(cand.checkpoint) / "policy_config.json").is_file()
    assert (reg.resolve(cand.checkpoint) / "rl_curves.png").is_file()
    # a second iteration pushes new items only
    again = run_iteration(LoopConfig(project="loop test", n=10, simulate=True, method="sft", unlabelled=5, always_export=True,
                                     improve=ImproveConfig(sft_epochs=1)),
                          connect(creds), creds.url, reg, store, small, taxonomy, candidates,
                          # a parity bound INT8 weights cannot meet: the loop falls back to an exact fp32 export
                          export_config=ExportConfig(parity_examples=50, max_auprc_drop=1.0, max_abs_diff=1e-4),
                          log=lambda *a: None)
    assert again["push"]["created"] == 10 and again["pull"]["corrections"] == 41
    assert again["export"]["quantization"] == "none" and "parity gate" in again["export"]["int8_refused"]
    assert Registry(tmp_path / "registry").get(again["version"]).parent == reg.production().version
    # a platform iteration: learns from that source's reviews only and ships them as the platform's own graph,
    # production's graph (and checkpoint) untouched for everything else
    from moderation.package import read_manifest, sha256_of

    platform = candidates[0].source
    mine = [c for c in candidates if c.source == platform]
    routed = run_iteration(LoopConfig(project="loop test", n=10, simulate=True, method="sft", unlabelled=5, always_export=True,
                                      improve=ImproveConfig(sft_epochs=1), platform=platform),
                           connect(creds), creds.url, reg, store, small, taxonomy, mine,
                           export_config=ExportConfig(parity_examples=50, max_auprc_drop=1.0), log=lambda *a: None)
    reg = Registry(tmp_path / "registry")
    parent, cand = reg.get(routed["parent"]), reg.get(routed["version"])
    package, parent_package = reg.resolve(cand.package), reg.resolve(parent.package)
    manifest = read_manifest(package)
    assert manifest["version"] == routed["version"] and manifest["platforms"][platform]["sources"] == [platform]
    assert sha256_of(package / "model.onnx") == sha256_of(parent_package / "model.onnx")
    assert (package / f"platforms/{platform}.onnx").is_file() and routed["platform"]["sources"] == [platform]
    assert reg.resolve(cand.checkpoint) == reg.resolve(parent.checkpoint)
    trained_on = routed["reward_model"]["items_train"] + routed["reward_model"]["items_heldout"]
    assert trained_on == len({j.item_id for j in store.judgments() if j.item_id in {c.id for c in mine}})


def test_next_version_bumps_the_newest_patch(tmp_path, tiny_package):
    from moderation.training.registry import _version_key

    reg = Registry(tmp_path / "reg")
    assert reg.next_version() == "0.0.1"
    for v in ("0.2.0", "0.10.1", "0.2.5", "experiment"):
        reg.add(v, tiny_package, _metrics(-0.3))
    assert reg.next_version() == "0.10.2"  # numeric order: 0.10.1 is newer than 0.2.5
    short = Registry(tmp_path / "reg2")
    short.add("2", tiny_package, _metrics(-0.3))
    assert short.next_version() == "2.0.1"  # missing parts count as 0
    assert _version_key("0.10.1") == (0, 10, 1) and _version_key("experiment") == (0,) and _version_key("1.x") == (0,)


def test_loop_command_ends_with_a_verdict_on_stderr_and_json_on_stdout(label_studio, tiny_package, tiny_checkpoint, tmp_path,
                                                                       monkeypatch):
    """`moderate loop` as a person runs it: a short verdict (what happened, why, what next) on stderr, the
    JSON report alone on stdout, no library log lines, and exit code 0 (promoted) or 4 (refused)."""
    creds, root = label_studio
    monkeypatch.setenv("LABEL_STUDIO_USER_TOKEN", creds.token)
    reg = Registry(tmp_path / "registry")
    reg.add("0.1.0", tiny_package, _metrics(-10.0), checkpoint=tiny_checkpoint)
    reg.promote("0.1.0")
    r = runner.invoke(cli.app, ["loop", "--n", "12", "--simulate", "--method", "sft", "--rl-steps", "2", "--project", "loop cli",
                                "--store", str(tmp_path / "fb"), "--registry", str(tmp_path / "registry"), "--url", creds.url,
                                "--ls-dir", str(root)])
    assert r.exit_code in (0, 4), r.output
    report = json.loads(r.stdout.strip().splitlines()[-1])  # stdout: the JSON report and nothing else after it
    assert report["parent"] == "0.1.0" and set(report) >= {"version", "promoted", "gate", "timings"}
    verdict = r.stderr[r.stderr.index("PROMOTED" if report["promoted"] else "NOT PROMOTED"):]
    assert report["version"] in verdict
    assert ("rollback" in verdict) if report["promoted"] else ("next:" in verdict)
    assert "matmul_nbits_quantizer" not in r.stderr and "[INFO]" not in r.stderr  # library noise stays off


def test_a_policy_that_kept_its_start_is_not_exported_and_the_verdict_says_why():
    from moderation.training.loop import unchanged_reason, verdict

    assert unchanged_reason({"rl": {"best_step": 0}}, "rl") == "RL's best step was its start"
    assert unchanged_reason({"rl": {"best_step": 25}}, "rl") is None
    assert unchanged_reason({"sft": {"best_epoch": 0}}, "sft") == "SFT's best epoch was its start"
    assert unchanged_reason({"sft": {"best_epoch": 0}, "rl": {"best_step": 50}}, "sft+rl") is None  # RL moved
    assert unchanged_reason({"sft": {"best_epoch": 2}, "rl": {"best_step": 0}}, "sft+rl") is None  # SFT moved
    both = unchanged_reason({"sft": {"best_epoch": 0}, "rl": {"best_step": 0}}, "sft+rl")
    assert both == "SFT's best epoch was its start; RL's best step was its start"
    text = verdict({"version": "0.4.3", "parent": "0.4.2", "promoted": False, "unchanged": "RL's best step was its start"})
    assert text.startswith("NOT PROMOTED: no candidate 0.4.3: RL's best step was its start; production stays 0.4.2.")
    assert "next:" in text


def test_the_loops_sft_leashes_train_split_texts_of_other_sources_only(taxonomy, small_examples, monkeypatch):
    from moderation.training import loop
    from moderation.training.data import Example

    assert loop.training_replay(small_examples["validation"] + small_examples["test"], 0) is None
    train = [Example(f"t:{i}", f"train text {i}", "s", {"toxic": float(i % 2)}, split="train") for i in range(30)]
    reviewed = [Example(f"r:{i}", f"reviewed platform text {i}", "platform", {"toxic": 1.0}, split="train") for i in range(30)]
    monkeypatch.setattr(loop, "REPLAY_ITEMS", 10)
    replay = loop.training_replay(train + reviewed + small_examples["test"] + small_examples["gate"], 0,
                                  exclude_sources={"platform"})
    assert len(replay.texts) == 10 and all(t.startswith("train text") for t in replay.texts)
    assert replay.leash and replay.ratio == loop.LEASH_RATIO == 3.0 and replay.targets is None
    assert loop.training_replay(reviewed, 0, exclude_sources={"platform"}) is None  # nothing else to hold on to
    sources = loop.reviewed_sources(train + reviewed, [type("J", (), {"item_id": "r:3"})(), type("J", (), {"item_id": "gone"})()])
    assert sources == {"platform"}

