"""The command line as a person meets it: every option explained, paths checked, errors instead of tracebacks."""

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
    from moderation.registry import Registry

    reg = Registry(tmp_path / "registry")
    metrics = {"macro_auprc": 0.61234, "auprc": {}, "utility_cost_optimal": -0.2345, "utility_review": -0.3}
    reg.add("0.4.0", tiny_package, metrics)
    reg.promote("0.4.0")
    reg.add("0.4.1-loop-20261129", tiny_package, {**metrics, "utility_cost_optimal": -0.5}, parent="0.4.0")
    reg.promote("0.4.1-loop-20261129")  # refused: utility fell
    r = runner.invoke(cli.app, ["registry", "list", "--registry", str(reg.root)], terminal_width=200)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(line for line in lines if len(line) > 80)
    assert any("0.4.1-loop-20261129" in line and "refused" in line for line in lines)
    assert any(line.startswith("0.4.1-loop-20261129 refused: reviewer utility did not improve") for line in lines)


def test_loop_verdict_says_what_happened_and_what_to_try():
    from moderation.loop import verdict

    refused = verdict({"version": "0.4.1", "parent": "0.4.0", "promoted": False, "export": {},
                       "gate": {"passed": False, "reasons": ["reviewer utility did not improve: -0.3 vs -0.2 in production",
                                                             "hate: test AUPRC fell 0.0300 (0.5 -> 0.47), more than 0.01"]}})
    assert refused.startswith("NOT PROMOTED") and "production stays 0.4.0" in refused
    assert "--n 2000" in refused and "--kl-beta" in refused and "hate: test AUPRC fell" in refused
    promoted = verdict({"version": "0.4.1", "parent": "0.4.0", "promoted": True, "export": {},
                        "gate": {"passed": True, "reasons": []}})
    assert promoted.startswith("PROMOTED: 0.4.1") and "rollback" in promoted
    not_exported = verdict({"version": "0.4.1", "parent": "0.4.0", "promoted": False, "export": {"refused": "hate moved 0.3"}})
    assert "not exported" in not_exported and "--rl-steps" in not_exported
