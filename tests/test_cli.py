"""The command line as a person meets it: every option explained, paths checked, errors instead of tracebacks."""

import json

import click
import typer
from typer.testing import CliRunner

import cli

runner = CliRunner()


def _commands(group: click.Command, prefix: str = "moderate"):
    yield prefix, group
    for name, sub in getattr(group, "commands", {}).items():
        yield from _commands(sub, f"{prefix} {name}")


def test_every_command_and_option_has_help_text():
    missing = []
    for path, command in _commands(typer.main.get_command(cli.app)):
        if not (command.help or "").strip():
            missing.append(f"{path}: no description")
        for p in command.params:
            if p.name in ("help", "install_completion", "show_completion"):
                continue
            if not (getattr(p, "help", None) or "").strip():
                missing.append(f"{path} {p.opts[0] if isinstance(p, click.Option) else p.name.upper()}")
    assert not missing, "options without help text:\n" + "\n".join(missing)


def test_registry_add_refuses_a_checkpoint_that_does_not_exist(tmp_path, tiny_package):
    reg = tmp_path / "registry"
    r = runner.invoke(cli.app, ["registry", "add", str(tiny_package), "--checkpoint", str(tmp_path / "runs" / "sft-v2"),
                                "--registry", str(reg)])
    assert r.exit_code == 2 and "no such folder" in r.output and "sft-v2" in r.output
    r = runner.invoke(cli.app, ["registry", "add", str(tiny_package), "--checkpoint", str(tiny_package), "--registry", str(reg)])
    assert r.exit_code == 2 and "not a policy checkpoint" in r.output
    r = runner.invoke(cli.app, ["registry", "add", str(tmp_path / "nope"), "--registry", str(reg)])
    assert r.exit_code == 2 and "not found" in r.output and "nope" in r.output


def test_registry_list_fits_80_columns(tmp_path, tiny_package):
    from moderation.training.registry import Registry

    reg = Registry(tmp_path / "registry")
    metrics = {"macro_auprc": 0.61234, "auprc": {}, "utility_cost_optimal": -0.2345, "utility_review": -0.3}
    reg.add("0.4.0", tiny_package, metrics)
    reg.promote("0.4.0")
    reg.add("0.4.1-loop-20261129", tiny_package, {**metrics, "utility_cost_optimal": -0.5}, parent="0.4.0")
    reg.promote("0.4.1-loop-20261129")  # refused: no gate split given
    r = runner.invoke(cli.app, ["registry", "list", "--registry", str(reg.root)], terminal_width=200)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(line for line in lines if len(line) > 80)
    assert any("0.4.1-loop-20261129" in line and "refused" in line for line in lines)
    assert any(line.startswith("0.4.1-loop-20261129 refused: no gate split to compare on") for line in lines)


def test_loop_verdict_says_what_happened_and_what_to_try():
    from moderation.training.loop import verdict

    gate = {"passed": False, "reasons": ["reviewer utility did not improve: -0.3 vs -0.2 in production",
                                         "hate: test AUPRC fell 0.0300 (0.5 -> 0.47), more than 0.01"]}
    refused = verdict({"version": "0.4.1", "parent": "0.4.0", "promoted": False, "export": {}, "rl": {}, "gate": gate})
    assert refused.startswith("NOT PROMOTED") and "production stays 0.4.0" in refused
    assert "--n 2000" in refused and "--kl-beta" in refused and "hate: test AUPRC fell" in refused
    sft = verdict({"version": "0.4.1", "parent": "0.4.0", "promoted": False, "export": {}, "sft": {}, "gate": gate})
    assert "--kl-beta" not in sft and "one category cannot mean two things" in sft  # no RL knobs after SFT
    assert "give the fine-tuning more to learn from" in sft and "give the reward model more" in refused
    promoted = verdict({"version": "0.4.1", "parent": "0.4.0", "promoted": True, "export": {},
                        "gate": {"passed": True, "reasons": []}})
    assert promoted.startswith("PROMOTED: 0.4.1") and "rollback" in promoted
    not_exported = verdict({"version": "0.4.1", "parent": "0.4.0", "promoted": False, "export": {"refused": "hate moved 0.3"}})
    assert "not exported" in not_exported and "--rl-steps" in not_exported


def test_data_stats_prints_every_source_and_the_rules():
    r = runner.invoke(cli.app, ["data", "stats"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert "davidson_hate_offensive" in r.output and "youtube_spam_collection" in r.output
    assert "What each source may teach" in r.output


def test_train_sft_refuses_bad_settings_before_training(tmp_path):
    r = runner.invoke(cli.app, ["train", "sft", "--out", str(tmp_path / "run"), "--exclude-source", "no_such_source"])
    assert r.exit_code == 2 and "unknown source(s) to exclude" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli.app, ["train", "sft", "--out", str(tmp_path / "run"), "--context-fraction", "2"])
    assert r.exit_code == 2
    r = runner.invoke(cli.app, ["train", "sft", "--out", str(tmp_path / "run"), "--bf16", "maybe"])
    assert r.exit_code == 2
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_eval_of_a_package_writes_the_report(tmp_path, tiny_package):
    r = runner.invoke(cli.app, ["eval", str(tiny_package), "--split", "validation", "--out", str(tmp_path / "eval")])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["split"] == "validation" and report["n_items"] > 1000 and set(report["thresholds"]) == {
        "toxic", "hate", "violence", "sexual", "self_harm", "misleading", "spam"}
    assert (tmp_path / "eval" / "pr_curves.png").is_file() and "Macro AUPRC" in r.output
    r = runner.invoke(cli.app, ["eval", str(tmp_path), "--out", str(tmp_path / "eval2")])
    assert r.exit_code == 2 and "neither a model package" in r.output


def test_export_and_push_refuse_what_is_not_there(tmp_path):
    r = runner.invoke(cli.app, ["export", str(tmp_path), "--out", str(tmp_path / "pkg")])
    assert r.exit_code == 2 and "not a policy checkpoint" in r.output
    r = runner.invoke(cli.app, ["export", str(tmp_path), "--quantization", "int4"])
    assert r.exit_code == 2
    r = runner.invoke(cli.app, ["review", "push", "--model", "/nonexistent", "--n", "3"])
    assert r.exit_code == 2 and "/nonexistent" in r.output and "Traceback" not in r.output


def test_review_stats_reads_a_store(tmp_path):
    from moderation.feedback import FeedbackStore, Judgment

    names = ["toxic", "hate", "violence", "sexual", "self_harm", "misleading", "spam"]
    store = FeedbackStore(tmp_path / "fb", names)
    store.add([Judgment(key=f"k{i}-{r}", item_id=f"i{i}", text="t", reviewer=r, model_version="0.4.0", gold=(i % 2,) + (0,) * 6,
                        seconds=20.0) for i in range(6) for r in ("a", "b")])
    r = runner.invoke(cli.app, ["review", "stats", "--store", str(tmp_path / "fb")], terminal_width=120)
    assert r.exit_code == 0, r.output
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    assert stats["reviewed"] == 12 and stats["items"] == 6 and stats["alpha"]["toxic"] == 1.0
