"""`moderate serve` as a real server process: the OpenAI client, bad requests, concurrency, and a real
Label Studio using it as its ML backend and sending it webhooks."""

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "test-token-not-a-secret-123"


def _start(package, store, port, token=TOKEN):
    env = {**os.environ, "MODERATION_API_TOKEN": token} if token else {k: v for k, v in os.environ.items() if k != "MODERATION_API_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-c", "import cli; cli.main()", "serve", "--model", str(package), "--port", str(port),
                             "--store", str(store), "--max-inputs", "32", "--max-chars", "5000", "--threads", "1"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
        if proc.poll() is not None:
            raise RuntimeError(proc.stdout.read())
    proc.kill()
    raise RuntimeError("server did not come up")


@pytest.fixture(scope="module")
def server(eager_tiny_package, tmp_path_factory):
    from labeling.server import free_port

    port = free_port()
    store = tmp_path_factory.mktemp("served-feedback")
    proc = _start(eager_tiny_package, store, port)
    yield f"http://127.0.0.1:{port}", store, proc
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert TOKEN not in out  # the token never reaches the server's log


def test_openai_client_gets_well_formed_results(server, tiny_package):
    from openai import OpenAI

    from moderation.runtime import Moderator

    url, _, _ = server
    client = OpenAI(base_url=f"{url}/v1", api_key=TOKEN)
    texts = ["you are an idiot", "see you at the meeting tomorrow", "win a free prize now!!!"]
    raw = client.moderations.with_raw_response.create(input=texts, model="omni-moderation-latest")
    resp = raw.parse()  # the client's own response type
    mod = Moderator.load(tiny_package)
    assert resp.model == f"moderation-policy-{mod.version}" and resp.id.startswith("modr-")
    assert len(resp.results) == 3 and all(isinstance(r.flagged, bool) for r in resp.results)
    # Categories OpenAI's schema has arrive in the client's *typed* fields, under OpenAI's names.
    expected = mod.score(texts)
    names = mod.categories
    for r, e in zip(resp.results, expected):
        want = dict(zip(names, e))
        assert r.category_scores.self_harm == pytest.approx(want["self_harm"], abs=1e-5)  # "self-harm" in JSON
        assert r.category_scores.harassment == pytest.approx(want["toxic"], abs=1e-5)
        assert r.category_scores.hate == pytest.approx(want["hate"], abs=1e-5)
        assert r.category_scores.violence == pytest.approx(want["violence"], abs=1e-5)
        assert r.category_scores.sexual == pytest.approx(want["sexual"], abs=1e-5)
        assert isinstance(r.categories.self_harm, bool) and isinstance(r.categories.harassment, bool)
        assert r.category_applied_input_types.self_harm == ["text"]
        # Ours with no OpenAI counterpart stay available as extra fields, and in model_dump().
        assert r.category_scores.model_extra["spam"] == pytest.approx(want["spam"], abs=1e-5)
        assert r.category_scores.model_extra["misleading"] == pytest.approx(want["misleading"], abs=1e-5)
        dumped = r.model_dump(by_alias=True)
        assert {"self-harm", "harassment", "hate", "violence", "sexual", "spam", "misleading"} <= set(dumped["category_scores"])
    body = raw.http_response.json()
    for r, e in zip(body["results"], expected):
        assert set(r["taxonomy_scores"]) == set(r["taxonomy_categories"]) == set(names)  # every result under our names too
        assert np.allclose([r["taxonomy_scores"][c] for c in names], e, atol=1e-5)
        assert r["flagged"] == any(r["categories"].values()) == any(r["taxonomy_categories"].values())
        assert r["decision"] in ("allow", "review", "block")
        assert "illicit" not in r["categories"]  # not modelled: absent, not a made-up False
    single = client.moderations.create(input="hello there")
    assert len(single.results) == 1


def test_spans_arrive_as_an_extra_field_the_openai_client_keeps(server):
    from openai import OpenAI

    url, _, _ = server
    client = OpenAI(base_url=f"{url}/v1", api_key=TOKEN)
    texts = ["you are an 1d10t", "Привет, see you tomorrow"]
    resp = client.moderations.create(input=texts, extra_body={"spans": True})
    for text, r in zip(texts, resp.results):
        spans = r.model_extra["spans"]
        assert {s["category"] for s in spans} == {c for c, v in r.model_extra["taxonomy_categories"].items() if v}
        assert all(0 <= s["start"] < s["end"] <= len(text) and s["source"] in ("category_tokens", "segment", "span_head")
                   for s in spans)
    plain = client.moderations.with_raw_response.create(input=texts).http_response.json()
    assert all("spans" not in r for r in plain["results"])  # only when asked: no cost otherwise
    every = client.moderations.create(input=texts, extra_body={"spans": "all"})
    assert all(isinstance(r.model_extra["spans"], list) for r in every.results)
    import httpx

    bad = httpx.post(f"{url}/v1/moderations", json={"input": texts, "spans": "everything"},
                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status_code in (400, 422) and "spans" in bad.text


def test_wrong_token_is_refused(server):
    from openai import AuthenticationError, OpenAI

    url, _, _ = server
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"{url}/v1", api_key="wrong").moderations.create(input="x")
    assert httpx.get(f"{url}/health").status_code == 200  # /health stays open


@pytest.mark.parametrize("body,status,needle", [
    ('{"input": 5}', 400, "input"),
    ('{"input": [1, 2]}', 400, "input"),
    ('{"inputs": "typo"}', 400, "input: Field required"),
    ('{"input": ', 400, "not valid JSON"),
    ('[]', 400, "invalid request body"),
    ('{"input": []}', 400, "empty list"),
    (json.dumps({"input": ["x"] * 33}), 413, "at most 32"),
    (json.dumps({"input": ["ok", "y" * 5001]}), 413, "input[1] has 5001 characters"),
])
def test_malformed_bodies_get_4xx_with_a_clear_message(server, body, status, needle):
    url, _, _ = server
    r = httpx.post(f"{url}/v1/moderations", content=body, headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]


def test_concurrent_requests_are_batched_and_match_one_by_one(server, tiny_package):
    from moderation.runtime import Moderator

    url, _, _ = server
    texts = [f"message number {i}: {'you fool ' * (i % 5)}" for i in range(60)]
    expected = Moderator.load(tiny_package).score(texts)
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
        def one(i):
            return c.post(f"{url}/v1/moderations", json={"input": texts[i]}).json()["results"][0]["taxonomy_scores"]

        with ThreadPoolExecutor(16) as pool:
            got = list(pool.map(one, range(len(texts))))
    cats = Moderator.load(tiny_package).categories
    assert np.allclose(np.array([[g[c] for c in cats] for g in got]), expected, atol=1e-5)


def test_label_studio_uses_us_as_ml_backend_and_webhooks_land_in_the_store(server, label_studio, taxonomy):
    from labeling.client import connect
    from labeling.config import labeling_config
    from moderation.feedback import FeedbackStore

    url, store, _ = server
    creds, _ = label_studio
    ls = connect(creds)
    project = ls.projects.create(title="ml backend test", label_config=labeling_config(taxonomy))
    ls.projects.update(id=project.id, evaluate_predictions_automatically=True)
    ids = ls.projects.import_tasks(id=project.id, request=[{"text": "I will find you and hurt you", "proposals": []},
                                             {"text": "lovely weather", "proposals": []}],  # our config lists $proposals
                                   return_task_ids=True).task_ids
    backend = ls.ml.create(project=project.id, url=url, title="moderation", auth_method="BASIC_AUTH",
                           basic_auth_user="label-studio", basic_auth_pass=TOKEN, is_interactive=False)
    assert str(ls.ml.get(id=backend.id).state).endswith("CO")  # connected: our /health and /setup answered
    ls.webhooks.create(project=project.id, url=f"{url}/webhook", send_payload=True, headers={"Authorization": f"Bearer {TOKEN}"},
                       actions=["ANNOTATION_CREATED", "ANNOTATION_UPDATED"])
    # a reviewer opening the task: Label Studio asks our /predict (no push step)
    task = ls.tasks.get(id=ids[0])
    preds = ls.predictions.list(task=ids[0])
    assert preds, "Label Studio fetched no prediction from the ML backend"
    assert preds[0].model_version and preds[0].result and preds[0].result[0]["from_name"] == "categories"
    assert task.data["text"].startswith("I will find you")
    # the reviewer submits; the webhook delivers it into our store, once
    ann = ls.annotations.create(id=ids[0], result=[{"from_name": "categories", "to_name": "text", "type": "choices",
                                                    "value": {"choices": ["violence"]}}], lead_time=12.0)
    fb = FeedbackStore(store, taxonomy.names)
    for _ in range(50):
        fb = FeedbackStore(store, taxonomy.names)
        if len(fb):
            break
        time.sleep(0.2)
    assert [j.key for j in fb.judgments()] == [f"labelstudio:{ann.id}"]
    assert fb.judgments()[0].gold == tuple(int(c == "violence") for c in taxonomy.names)
    # an edit replaces it (same key), a repeat changes nothing
    ls.annotations.update(id=ann.id, result=[{"from_name": "categories", "to_name": "text", "type": "choices",
                                              "value": {"choices": ["violence", "toxic"]}}])
    for _ in range(50):
        fb = FeedbackStore(store, taxonomy.names)
        if fb.judgments()[0].gold[taxonomy.index("toxic")] == 1:
            break
        time.sleep(0.2)
    assert len(fb) == 1 and fb.judgments()[0].gold[taxonomy.index("toxic")] == 1


def test_serving_without_a_token_warns_and_with_one_does_not(tiny_package, tmp_path):
    from labeling.server import free_port

    for token, warned in ((None, True), (TOKEN, False)):
        proc = _start(tiny_package, tmp_path, free_port(), token=token)
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        assert ("MODERATION_API_TOKEN is not set" in out) is warned, out[:2000]
