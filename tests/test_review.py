"""Human review through a real Label Studio server: push -> simulate -> pull -> store, and its failures."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import cli
from labeling.annotations import agreement, export_tasks, krippendorff_alpha_nominal, tasks_to_judgments
from labeling.client import connect
from labeling.config import labeling_config
from labeling.queue import QueueItem, ensure_project, push, select
from labeling.server import LabelStudioError, free_port, load_credentials
from labeling.simulate import simulatable_examples, simulate
from moderation.feedback import FeedbackStore, Judgment, preference_pairs
from moderation.runtime import Moderator

runner = CliRunner()


@pytest.fixture(scope="module")
def review_setup(label_studio, tiny_package, examples):
    creds, root = label_studio
    client = connect(creds)
    mod = Moderator.load(tiny_package)
    pool = [e for e in examples if e.annotators and e.split == "train"][:60]
    items = [QueueItem(e.id, e.text, s, e.source) for e, s in zip(pool, mod.score([e.text for e in pool]))]
    return client, creds, root, mod, items


def test_config_follows_the_taxonomy(taxonomy):
    from moderation.taxonomy import parse_taxonomy

    xml = labeling_config(taxonomy)
    for c in taxonomy.categories:
        assert f'value="{c.name}"' in xml
    small = parse_taxonomy({"category": [{"name": "scam", "definition": "fraud", "cost_fn": 1, "cost_fp": 1,
                                          "review_recall": 0.9, "block_precision": 0.9}]})
    assert 'value="scam"' in labeling_config(small) and 'value="toxic"' not in labeling_config(small)


def test_strategies_pick_what_they_promise():
    rng = np.random.default_rng(0)
    scores = rng.random((200, 3))
    items = [QueueItem(str(i), "t", s) for i, s in enumerate(scores)]
    thr = np.array([0.5, 0.5, 0.5])
    unc = select(items, 20, "uncertainty", thr)
    margin = lambda it: np.abs(np.log(it.scores / (1 - it.scores))).min()  # noqa: E731
    assert max(margin(i) for i in unc) <= np.median([margin(i) for i in items])
    audit = select(items, 20, "audit", thr)
    assert min(margin(i) for i in audit) >= np.median([margin(i) for i in items]) - 1e-9
    assert len({i.item_id for i in select(items, 50, "random", thr, seed=1)}) == 50
    assert len(select(items, 10, "disagreement", thr)) == 10
    with pytest.raises(ValueError, match="unknown strategy"):
        select(items, 1, "loudest", thr)


def test_pairs_from_rankings_and_corrections():
    a, b, c = (1, 0), (0, 1), (0, 0)
    j = Judgment(key="k", item_id="i", text="t", reviewer="r", model_version="v", gold=(1, 1), ranking=[a, b, c],
                 proposals=[a, b, c])
    pairs = {(p.chosen, p.rejected, p.origin) for p in preference_pairs(j)}
    assert {(a, b, "ranking"), (a, c, "ranking"), (b, c, "ranking")} <= pairs  # K(K-1)/2 from the ranking
    assert {((1, 1), a, "correction"), ((1, 1), b, "correction"), ((1, 1), c, "correction")} <= pairs
    assert preference_pairs(Judgment(key="s", item_id="i", text="t", reviewer="r", model_version="v", status="skipped")) == []


def test_krippendorff_alpha_known_values():
    assert krippendorff_alpha_nominal([[1, 1], [0, 0], [1, 1], [0, 0]]) == pytest.approx(1.0)
    # Krippendorff (2011) nominal example with 4 coders reduced to binary here: perfect disagreement < 0
    assert krippendorff_alpha_nominal([[1, 0], [0, 1], [1, 0], [0, 1]]) < 0
    assert krippendorff_alpha_nominal([[1]]) is None


def test_push_simulate_pull_store(review_setup, examples, tmp_path):
    client, creds, root, mod, items = review_setup
    project = ensure_project(client, creds.url, "test-e2e", mod.taxonomy)
    chosen = select(items, 12, "uncertainty", mod.review_thresholds)
    first = push(client, creds.url, project.id, chosen, mod.taxonomy, mod.version, mod.review_thresholds, k=4)
    again = push(client, creds.url, project.id, chosen, mod.taxonomy, mod.version, mod.review_thresholds, k=4)
    assert first["created"] == 12 and again == {"requested": 12, "created": 0, "already_present": 12}
    done = simulate(client, creds.url, project.id, simulatable_examples(examples), mod.taxonomy, reviewers=3,
                    per_item=2, noise=0.05, progress=False)
    assert done["annotations"] == 24
    tasks = export_tasks(client, creds.url, project.id)
    assert len(tasks) == 12 and all(t["predictions"][0]["model_version"] == mod.version for t in tasks)
    judgments, rejected = tasks_to_judgments(tasks, mod.taxonomy)
    assert not rejected and len(judgments) == 24
    assert len({j.reviewer for j in judgments}) >= 2 and all(j.seconds and j.seconds > 0 for j in judgments)
    assert all(len(j.ranking) == 4 for j in judgments)
    store = FeedbackStore(tmp_path / "fb", mod.taxonomy.names)
    assert store.add(judgments) == 24
    assert store.add(judgments) == 0  # pulling twice changes nothing
    reopened = FeedbackStore(tmp_path / "fb", mod.taxonomy.names)
    assert len(reopened) == 24 and len(reopened.pairs()) >= 24
    # What simulated reviewers could not judge went through Label Studio's "cannot judge" control and came
    # back as the judged mask; every pair differs on some category its reviewer judged.
    assert any(j.judged is not None for j in reopened.judgments())
    for pair in reopened.pairs():
        mask = pair.judged or (1,) * len(pair.chosen)
        assert any(m and a != b for a, b, m in zip(pair.chosen, pair.rejected, mask))
    for j in reopened.judgments():
        assert all(g == 0 for g, m in zip(j.gold, j.judged_mask(len(j.gold))) if not m)
    alpha = agreement(reopened.judgments(), mod.taxonomy.names)
    assert alpha["toxic"] is not None


def test_cli_pull_twice_and_reject_unknown_category(review_setup, tmp_path, monkeypatch):
    client, creds, root, mod, items = review_setup
    monkeypatch.setenv("LABEL_STUDIO_USER_TOKEN", creds.token)
    project = ensure_project(client, creds.url, "test-reject", mod.taxonomy)
    push(client, creds.url, project.id, items[:3], mod.taxonomy, mod.version, mod.review_thresholds)
    tasks = list(client.tasks.list(project=project.id))
    good = [{"from_name": "categories", "to_name": "text", "type": "choices", "value": {"choices": ["toxic"]}}]
    bad = [{"from_name": "categories", "to_name": "text", "type": "choices", "value": {"choices": ["nudity"]}}]
    client.annotations.create(id=tasks[0].id, result=good, lead_time=10)
    client.annotations.create(id=tasks[1].id, result=bad, lead_time=10)  # Label Studio accepts this silently
    client.annotations.create(id=tasks[2].id, result=[], was_cancelled=True, lead_time=3)  # skipped
    tax = tmp_path / "tax.toml"
    tax.write_text(mod.taxonomy.to_toml())
    args = ["review", "pull", "--project", "test-reject", "--store", str(tmp_path / "fb"), "--url", creds.url,
            "--ls-dir", str(root), "--taxonomy", str(tax)]
    r = runner.invoke(cli.app, args)
    assert r.exit_code == 3, r.output
    assert "unknown category 'nudity'" in r.output and f"task {tasks[1].id}" in r.output
    stats = json.loads(r.output.strip().splitlines()[0])
    assert stats["new"] == 2 and stats["status_skipped"] == 1
    r2 = runner.invoke(cli.app, args)
    assert json.loads(r2.output.strip().splitlines()[0])["new"] == 0


def test_server_down_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch, label_studio):
    monkeypatch.setenv("LABEL_STUDIO_USER_TOKEN", "some-token-123")
    store = tmp_path / "fb"
    dead = f"http://127.0.0.1:{free_port()}"
    r = runner.invoke(cli.app, ["review", "pull", "--url", dead, "--store", str(store), "--ls-dir", str(tmp_path / "ls")])
    assert r.exit_code == 2
    assert "not reachable" in r.output and "Traceback" not in r.output
    assert "some-token-123" not in r.output
    assert not store.exists()


def test_wrong_token_is_a_clear_error(label_studio, monkeypatch, tmp_path):
    creds, root = label_studio
    monkeypatch.setenv("LABEL_STUDIO_USER_TOKEN", "wrong-token-456")
    r = runner.invoke(cli.app, ["review", "pull", "--url", creds.url, "--store", str(tmp_path / "fb"), "--ls-dir", str(root)])
    assert r.exit_code == 2 and "rejected the API token" in r.output and "wrong-token-456" not in r.output
    with pytest.raises(LabelStudioError, match="401"):
        connect(load_credentials(root, creds.url))


def test_second_start_reuses_the_data(label_studio):
    from labeling.server import start

    creds, root = label_studio
    again = start(root, port=free_port(), log=lambda *a: None)  # already running: same server, same data
    assert again.url == creds.url


def test_task_shows_plain_words_most_likely_first_and_unescaped_text(taxonomy):
    from labeling.queue import task_payload

    names = taxonomy.names
    # toxic at 0.4 is above its review threshold here but below 0.5: the most likely set leaves it out.
    scores = np.array([0.4, 0.02, 0.9, 0.01, 0.01, 0.01, 0.01])
    thresholds = np.array([0.3] * len(names))
    item = QueueItem("d1", "&#8220;I will find you&#8221; &amp; hurt you", scores, "davidson_hate_offensive")
    task = task_payload(item, taxonomy, "0.4.0", 4, thresholds)
    data = task["data"]
    assert data["text"] == "\u201cI will find you\u201d & hurt you"
    assert data["original_text"] == item.text  # what the model scored, kept
    logps = data["proposal_log_probs"]
    assert logps == sorted(logps, reverse=True)  # most likely first
    assert data["proposal_labels"][0] == [1 if n == "violence" else 0 for n in names]
    assert data["proposals"][0]["title"] == "The model's best guess: violence"
    assert data["proposals"][0]["body"] == f"The model gives this label set a {np.exp(logps[0]) * 100:.0f}% chance of being right."
    assert data["proposals"][1]["title"].startswith("Alternative 1: ")
    assert "log-probability" not in json.dumps(data["proposals"]) and "greedy" not in json.dumps(data["proposals"])
    prefilled = task["predictions"][0]["result"][0]["value"]["choices"]
    assert prefilled == ["violence"]  # the pre-ticked set is the first (most likely) card
    plain = task_payload(QueueItem("d2", "plain text", scores), taxonomy, "0.4.0", 4, thresholds)["data"]
    assert "original_text" not in plain


def test_config_shows_definitions_and_steps_without_hovering(taxonomy):
    from labeling.config import instructions_html

    xml = labeling_config(taxonomy)
    for c in taxonomy.categories:
        assert c.definition.split(",")[0].replace("'", "&#x27;")[:20] in xml.replace("&apos;", "&#x27;") or c.definition[:15] in xml
    assert "drag the cards" in xml.lower() and "How to review" in xml
    html = instructions_html(taxonomy)
    assert all(c.name in html for c in taxonomy.categories) and "note" in html.lower()


def test_judgment_records_the_original_text(taxonomy):
    task = {"id": 1, "data": {"text": "\u201cx\u201d", "original_text": "&#8220;x&#8221;", "item_id": "d1",
                              "proposal_labels": [[0] * len(taxonomy)], "proposals": [{"id": "p1"}]},
            "annotations": [{"id": 5, "completed_by": 1, "result": [], "lead_time": 3}]}
    judgments, rejected = tasks_to_judgments([task], taxonomy)
    assert not rejected and judgments[0].text == "&#8220;x&#8221;"


def test_cli_push_draws_a_pool_shows_progress_and_refuses_test(review_setup, tmp_path, monkeypatch):
    client, creds, root, mod, items = review_setup
    monkeypatch.setenv("LABEL_STUDIO_USER_TOKEN", creds.token)
    src = tmp_path / "mine.jsonl"
    src.write_text("".join(json.dumps({"id": f"mine-{i}", "text": f"comment number {i}, you fool"}) + "\n" for i in range(40)))
    common = ["--project", "test-push-cli", "--url", creds.url, "--ls-dir", str(root), "--model", str(tiny_model_path(mod))]
    r = runner.invoke(cli.app, ["review", "push", str(src), "--n", "5", "--pool", "12", *common])
    assert r.exit_code == 0, r.output
    assert "random pool of 12 of the 40" in r.output and "scoring candidates" in r.output
    assert "/projects/" in r.output and "moderate review pull" in r.output  # what to do next
    assert json.loads(r.stdout.strip().splitlines()[-1])["created"] == 5  # the JSON for machines stays on stdout
    for held_back in ("test", "gate"):  # reporting and the promotion gate: no reviewer may see them
        r = runner.invoke(cli.app, ["review", "push", "--split", held_back, *common])
        assert r.exit_code == 2 and held_back in r.output


def tiny_model_path(mod):
    return mod.package_dir


def test_simulate_says_why_a_task_stays_open(review_setup, examples):
    client, creds, root, mod, items = review_setup
    project = ensure_project(client, creds.url, "test-why-open", mod.taxonomy)
    plain = next(e for e in examples if not e.annotators and e.split == "train")
    extra = [QueueItem("mine-1", "my own text", items[0].scores), QueueItem(plain.id, plain.text, items[0].scores, plain.source)]
    push(client, creds.url, project.id, items[:2] + extra, mod.taxonomy, mod.version, mod.review_thresholds)
    done = simulate(client, creds.url, project.id, simulatable_examples(examples), mod.taxonomy, progress=False,
                    known_sources={e.id: e.source for e in examples})
    assert done["annotations"] == 2 and done["not_simulatable"] == 2
    assert done["not_simulatable_reasons"] == {f"from {plain.source}, which keeps no per-annotator labels": 1,
                                               "not a dataset item (your own data): no annotator's labels to replay": 1}
