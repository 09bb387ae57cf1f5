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


def test_a_platform_name_that_cannot_name_a_graph_file_is_refused():
    from moderation.errors import ConfigError
    from moderation.training.loop import LoopConfig

    for bad in ("YouTube Spam", "../x", "", "-forum"):
        with pytest.raises(ConfigError, match="must be 1-64 characters"):
            LoopConfig(platform=bad)
    assert LoopConfig(platform="forum.v2").platform == "forum.v2"


def test_a_file_platforms_gate_share_is_stable_and_judged_on_what_its_reviewers_judged(taxonomy):
    from moderation.feedback import Judgment
    from moderation.training.loop import GATE_SHARE, gate_share_examples, in_gate_share, judged_categories

    ids = [f"forum:{i}" for i in range(2000)]
    share = [i for i in ids if in_gate_share(i)]
    assert abs(len(share) / len(ids) - 1 / GATE_SHARE) < 0.03
    # the same items in every process and on every machine (a salted hash() would move them between runs)
    assert [i for i in range(40) if in_gate_share(f"forum:{i}")] == [0, 2, 3, 11, 14, 21, 24, 34, 38]
    n = len(taxonomy)
    only_spam = tuple(int(c == "spam") for c in taxonomy.names)
    js = [Judgment(f"k{i}", i, f"text {i}", "r1", "v", gold=only_spam, judged=only_spam) for i in ids[:200]]
    js += [Judgment(f"k{i}b", i, f"text {i}", "r2", "v", gold=(0,) * n, judged=only_spam) for i in ids[:200:2]]  # 1-1 ties: positive
    js += [Judgment(f"k{i}s", i, f"text {i}", "r3", "v", status="skipped") for i in ids[200:260]]  # a skip labels nothing
    examples = gate_share_examples(js, "forum", taxonomy.names)
    assert [e.id for e in examples] == [i for i in ids[:200] if in_gate_share(i)]
    assert all(e.source == "forum" and e.split == "gate" and e.labels["spam"] == 1.0 and e.labels["toxic"] is None
               for e in examples)
    assert judged_categories(examples, taxonomy.names).tolist() == [c == "spam" for c in taxonomy.names]


def test_a_file_platforms_iteration_keeps_its_gate_share_out_of_training_and_gates_on_it(
        label_studio, tiny_package, tiny_checkpoint, small_examples, examples, taxonomy, tmp_path, monkeypatch):
    """`moderate loop --input FILE --platform NAME`: the file's items are reviewed in Label Studio; too few in the
    gate share is refused before any training; with enough, one in four judges the candidate and none trains it."""
    from labeling.client import connect
    from moderation.feedback import FeedbackStore
    from moderation.package import read_manifest
    from moderation.training import loop
    from moderation.training.data import Example
    from moderation.training.export import ExportConfig
    from moderation.training.improve import ImproveConfig
    from moderation.training.registry import Registry

    creds, _ = label_studio
    reg = Registry(tmp_path / "registry")
    reg.add("0.1.0", tiny_package, {"utility_cost_optimal": -0.3}, checkpoint=tiny_checkpoint)
    reg.promote("0.1.0")
    # the team's file: texts simulated reviewers can judge (per-annotator labels), pushed as platform "forum"
    annotated = [e for e in examples if e.annotators and e.split == "validation"][:60]
    rows = [Example(id=e.id, text=e.text, source="forum", split="candidate", labels={}) for e in annotated]
    small = small_examples["validation"] + small_examples["gate"] + small_examples["test"] + annotated
    small += [e for e in small_examples["train"] if e.source == "sms_spam_collection"][:20]
    store = FeedbackStore(tmp_path / "feedback", taxonomy.names)
    cfg = dict(project="forum", simulate=True, method="sft", unlabelled=5, always_export=True,
               improve=ImproveConfig(sft_epochs=1), platform="forum")
    first = loop.run_iteration(loop.LoopConfig(n=20, **cfg), connect(creds), creds.url, reg, store, small, taxonomy, rows,
                               export_config=ExportConfig(parity_examples=50, max_auprc_drop=1.0), log=lambda *a: None)
    assert first["pull"]["corrections"] == 20 and "in its gate share" in first["unchanged"] and "reward" not in first["timings"]
    assert len(Registry(tmp_path / "registry").versions) == 1  # nothing trained, nothing registered; the reviews are kept

    monkeypatch.setattr(loop, "MIN_FOCUS_ITEMS", 3)  # a test-sized gate share
    second = loop.run_iteration(loop.LoopConfig(n=20, **cfg), connect(creds), creds.url, reg, store, small, taxonomy, rows,
                                export_config=ExportConfig(parity_examples=50, max_auprc_drop=1.0), log=lambda *a: None)
    reviewed = {j.item_id for j in store.judgments()}
    assert len(reviewed) == 40 and reviewed <= {r.id for r in rows}
    share = {i for i in reviewed if loop.in_gate_share(i)}
    assert len(share) >= 3 and second["gate_share"]["items"] == len(share)
    trained = second["reward_model"]["items_train"] + second["reward_model"]["items_heldout"]
    assert trained == 40 - len(share)  # every reviewed forum item but the gate share
    assert second["gate"]["n_items"] == len(small_examples["gate"]) + len(share)
    reg = Registry(tmp_path / "registry")
    manifest = read_manifest(reg.resolve(reg.get(second["version"]).package))
    assert manifest["platforms"]["forum"]["sources"] == ["forum"]
