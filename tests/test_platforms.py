"""Platform graphs: a package can carry a graph adapted to one platform's reviews (`moderate loop --platform`),
which scores that platform's texts while the main graph scores everything else."""

import shutil

import numpy as np
import pytest

TEXTS = ["check out my channel http://x.co", "you are an idiot", "have a nice day", "free iphone, click now!!!"]


@pytest.fixture(scope="module")
def routed(tmp_path_factory, taxonomy, tiny_package, small_examples):
    """The tiny package as production, and another tiny policy (another seed) exported as a platform's graph."""
    from moderation.training.export import ExportConfig, export_package
    from moderation.training.loop import routed_package
    from tests.conftest import make_tiny_policy

    root = tmp_path_factory.mktemp("routed")
    make_tiny_policy(taxonomy.names, seed=1).save(root / "ckpt")
    export_package(root / "ckpt", root / "exported", taxonomy, small_examples["validation"], small_examples["test"],
                   ExportConfig(parity_examples=50, max_auprc_drop=1.0), log=lambda *a: None)
    out = routed_package(tiny_package, root / "exported", root / "candidate", "9.9.9", "youtube_spam_collection",
                         {"youtube_spam_collection"}, parent="tiny", reviews=10, log=lambda *a: None)
    return out, root / "exported"


def test_a_platforms_texts_get_its_graph_and_every_other_text_productions(routed, tiny_package):
    from moderation.runtime import Moderator
    from moderation.training.data import Example
    from moderation.training.registry import package_scorer, routed_scores

    package, exported = routed
    main = Moderator.load(package).score(TEXTS)
    assert np.array_equal(main, Moderator.load(tiny_package).score(TEXTS))  # production's graph, bit for bit
    adapted = Moderator.load(package, platform="youtube_spam_collection")
    assert adapted.platform == "youtube_spam_collection"
    assert np.allclose(adapted.score(TEXTS), Moderator.load(exported).score(TEXTS))
    assert not np.allclose(adapted.score(TEXTS), main)
    # the gate reads each gate item as it would be scored in use: by its source's platform graph or the main one
    items = [Example(f"g{i}", t, "youtube_spam_collection" if i % 2 else "olid_v1", {}, split="gate") for i, t in enumerate(TEXTS)]
    scores = routed_scores(package, package_scorer, items)
    assert np.allclose(scores[1::2], adapted.score(TEXTS[1::2])) and np.array_equal(scores[::2], main[::2])


def test_an_unknown_platform_or_an_altered_platform_graph_is_refused(routed, tmp_path, tiny_package):
    from moderation.package import ModelPackageError
    from moderation.runtime import InputError, Moderator

    package, _ = routed
    with pytest.raises(InputError, match=r"no graph adapted to platform 'gab' \(its platforms: youtube_spam_collection\)"):
        Moderator.load(package, platform="gab")
    with pytest.raises(InputError, match=r"its platforms: none"):
        Moderator.load(tiny_package, platform="youtube_spam_collection")
    altered = tmp_path / "altered"
    shutil.copytree(package, altered)
    with open(altered / "platforms" / "youtube_spam_collection.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelPackageError, match=r"youtube_spam_collection.onnx: sha256 mismatch"):
        Moderator.load(altered)  # verified even when the main graph is the one asked for
    (altered / "platforms" / "youtube_spam_collection.onnx").unlink()
    with pytest.raises(ModelPackageError, match=r"listed in the manifest but missing"):
        Moderator.load(altered)


def test_scan_with_a_platform_uses_its_graph_and_names_an_unknown_one(routed, tmp_path):
    import json

    from typer.testing import CliRunner

    import cli

    package, exported = routed
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    runner = CliRunner()
    rows = {}
    for platform in (None, "youtube_spam_collection"):
        out = tmp_path / f"{platform}.jsonl"
        r = runner.invoke(cli.app, ["scan", str(src), "--out", str(out), "--model", str(package), "--no-progress"]
                          + (["--platform", platform] if platform else []))
        assert r.exit_code == 0, r.output
        rows[platform] = [json.loads(line)["scores"] for line in out.read_text().splitlines()]
    assert rows[None] != rows["youtube_spam_collection"]
    r = runner.invoke(cli.app, ["scan", str(src), "--model", str(package), "--platform", "gab", "--no-progress"])
    assert r.exit_code == 2 and "no graph adapted to platform 'gab'" in r.output, r.output


def test_the_loop_refuses_a_platform_it_cannot_gate(tmp_path):
    from moderation.errors import ConfigError, ModerationError
    from moderation.training.loop import LoopConfig, run_from_registry
    from moderation.training.registry import Registry

    with pytest.raises(ConfigError, match="platform 'YouTube Spam' must be"):
        LoopConfig(platform="YouTube Spam")
    rows = [type("Row", (), {"id": "1", "text": "hello"})()]
    with pytest.raises(ModerationError, match="items from --input have no gate items yet"):
        run_from_registry(LoopConfig(platform="forum", simulate=True), None, "", Registry(tmp_path / "reg"), tmp_path / "fb", None,
                          rows=rows, source="forum.jsonl")
