"""labeling/queue.py without a server: which items each strategy picks, and the exact task a reviewer gets.
The last tests push to a real Label Studio (set MODERATION_TEST_LABEL_STUDIO=<folder> to reuse a running one)."""

import json

import numpy as np
import pytest

from labeling.queue import QueueItem, _logit, choose_for_review, fresh_items, prediction, select, task_payload

NAMES = ["toxic", "hate", "violence", "sexual", "self_harm", "misleading", "spam"]


def items(scores):
    return [QueueItem(str(i), f"text {i}", np.asarray(s, dtype=float)) for i, s in enumerate(scores)]


def test_logit_is_finite_at_zero_and_one():
    z = _logit(np.array([0.0, 0.5, 1.0]))
    assert np.isfinite(z).all() and z[1] == 0.0
    assert z[0] == pytest.approx(np.log(1e-6 / (1 - 1e-6))) and z[2] == pytest.approx(-z[0])


def test_uncertainty_measures_distance_to_each_categorys_own_threshold():
    thresholds = np.array([0.2, 0.9])
    pool = items([[0.5, 0.5], [0.21, 0.01], [0.01, 0.88], [0.99, 0.01]])
    assert [it.item_id for it in select(pool, 2, "uncertainty", thresholds)] == ["1", "2"]


def test_uncertainty_keeps_input_order_between_ties():
    pool = items([[0.3, 0.3]] * 5)
    assert [it.item_id for it in select(pool, 5, "uncertainty", np.array([0.5, 0.5]))] == ["0", "1", "2", "3", "4"]


def test_random_follows_its_seed():
    pool = items(np.random.default_rng(0).random((50, 2)))
    thr = np.array([0.5, 0.5])
    first = [it.item_id for it in select(pool, 10, "random", thr)]
    assert first == [it.item_id for it in select(pool, 10, "random", thr, seed=0)]  # the default seed is 0
    assert first != [it.item_id for it in select(pool, 10, "random", thr, seed=1)]


def test_audit_samples_only_confident_items():
    rng = np.random.default_rng(1)
    pool = items(np.vstack([np.full((20, 2), 0.5), rng.choice([0.001, 0.999], (20, 2))]))
    chosen = select(pool, 15, "audit", np.array([0.5, 0.5]), seed=3)
    assert len(chosen) == 15 and all(int(it.item_id) >= 20 for it in chosen)


def test_unknown_strategy_and_empty_pool():
    with pytest.raises(ValueError, match=r"unknown strategy 'loudest'; choose one of uncertainty, disagreement, random, audit"):
        select(items([[0.5]]), 1, "loudest", np.array([0.5]))
    assert select([], 3, "uncertainty", np.array([0.5])) == []


def test_prediction_pre_fills_exactly_the_given_labels():
    pred = prediction((1, 0, 1), np.array([0.7, 0.1, 0.9]), ["a", "b", "c"], "0.4.0")
    assert pred == {"model_version": "0.4.0", "score": pytest.approx(0.9),
                    "result": [{"from_name": "categories", "to_name": "text", "type": "choices", "value": {"choices": ["a", "c"]}}]}
    assert prediction((0, 0, 0), np.array([0.1, 0.2, 0.3]), ["a", "b", "c"], "v")["result"] == []
    assert prediction((), np.array([]), [], "v")["score"] == 0.0


def test_task_payload_records_scores_thresholds_and_proposals(taxonomy):
    scores = np.array([0.61234, 0.02, 0.3, 0.01, 0.01, 0.01, 0.01])
    thresholds = np.array([0.5, 0.33, 0.25, 0.33, 0.2, 0.5, 0.6])
    task = task_payload(QueueItem("x1", "hello", scores, "src"), taxonomy, "0.4.0", 3, thresholds, seed=0)
    data = task["data"]
    assert data["item_id"] == "x1" and data["source"] == "src" and data["model_version"] == "0.4.0" and data["text"] == "hello"
    assert data["scores"]["toxic"] == 0.6123 and data["review_thresholds"]["violence"] == 0.25
    assert [p["id"] for p in data["proposals"]] == ["card-1", "card-2", "card-3"]
    assert len(data["proposal_labels"]) == 3 and len(set(map(tuple, data["proposal_labels"]))) == 3
    assert data["proposal_labels"][0] == [1, 0, 0, 0, 0, 0, 0]  # the most likely set: toxic only
    assert task["predictions"][0]["model_version"] == "0.4.0"
    assert task["predictions"][0]["result"][0]["value"]["choices"] == ["toxic"]


def test_fresh_items_skips_what_the_project_has_and_repeats():
    pool = items([[0.1], [0.2], [0.3]]) + items([[0.4]])  # the last repeats id "0"
    fresh = fresh_items(pool, {"1"})
    assert [it.item_id for it in fresh] == ["0", "2"]


def test_choose_for_review_draws_a_pool_scores_it_in_chunks_and_selects():
    calls, logs = [], []

    def score(texts):
        calls.append(len(texts))
        return np.array([[0.5 if t.endswith("7") else 0.01] for t in texts])

    ids = [str(i) for i in range(600)]
    texts = [f"text {i}" for i in range(600)]
    chosen, scored = choose_for_review(score, np.array([0.5]), ids, texts, ["s"] * 600, 5, "uncertainty", k=2, pool=300,
                                       seed=0, log=logs.append)
    assert scored == 300 and calls == [256, 44] and logs == ["drawing a random pool of 300 of the 600 candidates (--pool 0 scores them all)"]
    assert len(chosen) == 5 and all(it.text.endswith("7") for it in chosen)  # the uncertain ones
    assert all(it.source == "s" and it.item_id == it.text.split()[-1] for it in chosen)
    same, _ = choose_for_review(score, np.array([0.5]), ids, texts, ["s"] * 600, 5, "uncertainty", k=2, pool=300, seed=0)
    assert [it.item_id for it in same] == [it.item_id for it in chosen]  # the pool follows the seed
    calls.clear()
    everything, scored = choose_for_review(score, np.array([0.5]), ids, texts, ["s"] * 600, 5, "uncertainty", pool=0)
    assert scored == 600 and calls == [256, 256, 88]


def test_choose_for_review_shows_a_progress_bar_on_stderr(capsys):
    score = lambda texts: np.full((len(texts), 1), 0.3)  # noqa: E731
    ids = [str(i) for i in range(300)]
    choose_for_review(score, np.array([0.5]), ids, ids, ["s"] * 300, 3, "random", pool=0)
    err = capsys.readouterr().err
    assert "scoring candidates: 100%" in err and "300/300" in err and " texts/s" in err


def test_choose_for_review_passes_k_and_seed_to_the_strategy():
    rng = np.random.default_rng(5)
    scores = rng.random((200, 7))
    ids = [str(i) for i in range(200)]
    score = lambda texts: scores[[int(t) for t in texts]]  # noqa: E731
    thr = np.full(7, 0.5)
    for strategy in ("disagreement", "random"):
        got = [it.item_id for it in choose_for_review(score, thr, ids, ids, ["s"] * 200, 10, strategy, k=6, pool=0, seed=4)[0]]
        want = [it.item_id for it in select(items(scores), 10, strategy, thr, k=6, seed=4)]
        assert got == want, strategy


def test_task_payload_rounds_to_four_places_and_follows_its_seed(taxonomy):
    scores = np.array([0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15])
    thresholds = np.array([0.123456] * 7)
    a = task_payload(QueueItem("x", "t", scores), taxonomy, "v", 4, thresholds)["data"]
    assert a["review_thresholds"]["toxic"] == 0.1235
    assert all(lp == round(lp, 4) for lp in a["proposal_log_probs"])
    b = task_payload(QueueItem("x", "t", scores), taxonomy, "v", 4, thresholds, seed=0)["data"]
    c = task_payload(QueueItem("x", "t", scores), taxonomy, "v", 4, thresholds, seed=7)["data"]
    assert a["proposal_labels"] == b["proposal_labels"]  # the default seed is 0
    assert a["proposal_labels"] != c["proposal_labels"]  # uncertain scores: the sampled alternatives follow the seed


# ------------------------------------------------------------------ against a real Label Studio


class FixedScorer:
    """What push_for_review needs of a Moderator: scores, review thresholds, taxonomy, version."""

    def __init__(self, taxonomy, table: dict[str, list[float]]):
        self.taxonomy, self.table, self.version = taxonomy, table, "7.7.7"
        self.review_thresholds = np.full(len(taxonomy.names), 0.5)

    def score(self, texts):
        return np.asarray([self.table[t] for t in texts], dtype=float)


@pytest.fixture
def ls(label_studio):
    from labeling.client import connect

    creds, _ = label_studio
    return connect(creds), creds.url


def _title(request) -> str:
    import uuid

    return f"{request.node.name[5:35]}-{uuid.uuid4().hex[:8]}"  # titles: at most 50 characters


def _project(client, pid):
    return client.projects.get(id=pid)


def test_ensure_project_creates_once_and_repairs_a_changed_config(ls, taxonomy, request):
    from labeling.config import instructions_html, labeling_config
    from labeling.queue import ensure_project

    client, url = ls
    title = _title(request)
    first = ensure_project(client, url, title, taxonomy)
    got = _project(client, first.id)
    assert got.title == title and got.label_config.strip() == labeling_config(taxonomy).strip()
    assert got.expert_instruction == instructions_html(taxonomy) and got.show_instruction and got.show_skip_button
    assert "correct the labels, rank the proposals" in got.description
    assert ensure_project(client, url, title, taxonomy).id == first.id
    assert sum(p.title == title for p in client.projects.list()) == 1

    other = ('<View><Text name="text" value="$text"/><Choices name="categories" toName="text" choice="multiple">'
             '<Choice value="toxic"/></Choices></View>')
    client.projects.update(id=first.id, label_config=other, expert_instruction="old words", show_instruction=False)
    assert ensure_project(client, url, title, taxonomy).id == first.id
    repaired = _project(client, first.id)
    assert repaired.label_config.strip() == labeling_config(taxonomy).strip()
    assert repaired.expert_instruction == instructions_html(taxonomy) and repaired.show_instruction

    client.projects.update(id=first.id, expert_instruction="only the words changed")
    ensure_project(client, url, title, taxonomy)
    assert _project(client, first.id).expert_instruction == instructions_html(taxonomy)


def test_push_imports_each_item_once_in_chunks_with_its_prediction(ls, taxonomy, request):
    from labeling.client import list_tasks
    from labeling.queue import ensure_project, push

    client, url = ls
    pid = ensure_project(client, url, _title(request), taxonomy).id
    rng = np.random.default_rng(4)
    pool = [QueueItem(f"q{i}", f"text number {i} &amp; more", rng.random(len(taxonomy.names)), "src") for i in range(5)]
    from moderation.spans import Span

    # highlighted evidence, in original-text offsets ("more" sits after an entity the reviewer sees unescaped)
    pool[0].spans = [Span(0, 4, "toxic", 0.8, "span_head"), Span(20, 24, "spam", 0.6, "category_tokens")]
    thresholds = np.linspace(0.1, 0.7, len(taxonomy.names))
    result = push(client, url, pid, pool + [pool[0]], taxonomy, "9.9.9", thresholds, k=3, seed=5, chunk=2)
    assert result == {"requested": 6, "created": 5, "already_present": 1}

    tasks = sorted(list_tasks(client, url, pid), key=lambda t: t.data["item_id"])
    assert [t.data["item_id"] for t in tasks] == [it.item_id for it in pool]
    for task, item in zip(tasks, pool):
        expected = task_payload(item, taxonomy, "9.9.9", 3, thresholds, seed=5)
        assert task.data == json.loads(json.dumps(expected["data"]))
        assert len(task.data["proposals"]) == 3 and task.data["text"] == item.text.replace("&amp;", "&")
        (pred,) = task.predictions
        pred = pred if isinstance(pred, dict) else pred.dict()
        assert pred["model_version"] == "9.9.9" and pred["result"] == expected["predictions"][0]["result"]
    regions = [r for r in (tasks[0].predictions[0] if isinstance(tasks[0].predictions[0], dict) else tasks[0].predictions[0].dict())["result"]
               if r["type"] == "labels"]
    assert [(r["value"]["text"], r["value"]["labels"]) for r in regions] == [("text", ["toxic"]), ("more", ["spam"])]

    again = push(client, url, pid, pool, taxonomy, "9.9.9", thresholds, k=3, seed=5)
    assert again == {"requested": 5, "created": 0, "already_present": 5}
    assert len(list_tasks(client, url, pid)) == 5


def test_push_for_review_queues_the_most_uncertain_items_under_the_models_version(ls, taxonomy, request):
    from labeling.client import list_tasks
    from labeling.queue import push_for_review

    client, url = ls
    n_cat = len(taxonomy.names)
    table = {f"text {i}": [0.5 + 0.04 * i] + [0.01] * (n_cat - 1) for i in range(10)}  # text 0 is the least sure
    mod = FixedScorer(taxonomy, table)
    title, ids, texts = _title(request), [f"id{i}" for i in range(10)], list(table)
    logged = []
    result = push_for_review(client, url, title, mod, ids, texts, ["s"] * 10, n=3, strategy="uncertainty", k=2, pool=8,
                             seed=0, log=logged.append)
    assert result["strategy"] == "uncertainty" and result["scored"] == 8
    assert (result["requested"], result["created"], result["already_present"]) == (3, 3, 0)
    assert logged == ["drawing a random pool of 8 of the 10 candidates (--pool 0 scores them all)"]
    project = next(p for p in client.projects.list() if p.title == title)
    assert result["project"] == project.id
    tasks = list_tasks(client, url, project.id)
    kept = np.sort(np.random.default_rng(0).choice(10, 8, replace=False))  # the pool push_for_review drew
    assert sorted(t.data["item_id"] for t in tasks) == [f"id{i}" for i in sorted(kept)[:3]]
    for t in tasks:
        assert t.data["model_version"] == "7.7.7" and len(t.data["proposals"]) == 2 and t.data["source"] == "s"
        assert set(t.data["review_thresholds"].values()) == {0.5}
