"""The Label Studio ML-backend protocol, as a router on the `moderate serve` app.

Connect it once (`ml.create(project=…, url="http://127.0.0.1:8000")`, or Settings -> Model in the UI) and
turn on "retrieve predictions when loading a task": a reviewer who opens any task of the project sees
the model's proposed categories without a push step. Label Studio calls:

  GET  /health    (served by moderation/serve.py)  {"status": "UP", …}
  POST /setup     {project, schema, hostname, access_token, …} -> {"model_version"}; the schema must have
                  our controls (a project made by `moderate review push` or with our config). The LS
                  access token in this request is neither stored nor logged.
  POST /predict   {tasks: [{id, data: {text, …}}, …]} -> {"results": [{model_version, score, result}]},
                  one per task, in order: the categories the model flags (at the review thresholds).
                  A push pre-ticks the most likely label set instead, because there the K proposals
                  with their probabilities sit beside it; the ranking needs proposals in the task
                  data, so it stays with `moderate review push`.
  POST /webhook   {action, annotation, task, project}: ANNOTATION_CREATED / ANNOTATION_UPDATED go into the
                  feedback store (validated like `review pull`; idempotent by annotation id, an update
                  replaces the earlier version). Other actions are acknowledged and ignored.
"""

from __future__ import annotations

import asyncio

import threading
from pathlib import Path

import numpy as np
from fastapi import Request  # module level: FastAPI resolves the handlers' (string) annotations here

from labeling.config import CATEGORIES, TEXT


def backend_router(moderator, batcher, store_dir, cfg):
    from fastapi import APIRouter
    from fastapi.responses import JSONResponse

    from labeling.annotations import annotation_to_judgment
    from labeling.queue import prediction, span_regions
    from moderation.feedback import FeedbackStore

    router = APIRouter(tags=["label-studio"])
    names = moderator.taxonomy.names
    store_lock = threading.Lock()
    store_path = Path(store_dir) if store_dir is not None else None

    def bad(status: int, message: str) -> JSONResponse:
        return JSONResponse({"status": "error", "error": message}, status_code=status)

    async def json_body(request: Request):
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @router.post("/setup")
    async def setup(request: Request):
        body = await json_body(request)
        if body is None:
            return bad(400, "expected a JSON object")
        schema = str(body.get("schema") or "")
        if schema and f'name="{CATEGORIES}"' not in schema:
            return bad(400, f'the project\'s labeling config has no <Choices name="{CATEGORIES}">; create the project with '
                            "`moderate review push` or use the config from labeling/config.py")
        return {"model_version": moderator.version}

    @router.post("/predict")
    async def predict(request: Request):
        body = await json_body(request)
        if body is None or not isinstance(body.get("tasks"), list):
            return bad(400, "expected {\"tasks\": [...]}")
        texts = []
        for i, task in enumerate(body["tasks"]):
            text = ((task or {}).get("data") or {}).get(TEXT) if isinstance(task, dict) else None
            if not isinstance(text, str):
                return bad(400, f"tasks[{i}]: data.{TEXT} is missing or not a string")
            if len(text) > cfg.max_chars:
                return bad(413, f"tasks[{i}]: {len(text)} characters; at most {cfg.max_chars}")
            texts.append(text)
        found = [[] for _ in texts]
        if texts and moderator.has_token_probs:  # on the batcher's thread, which owns the ONNX session
            scores, found = await asyncio.get_running_loop().run_in_executor(batcher.pool, moderator.score_with_spans, texts)
        else:
            scores = await batcher.score(texts) if texts else np.zeros((0, len(names)))
        flags = scores >= moderator.review_thresholds
        return {"results": [prediction(tuple(int(v) for v in f), s, names, moderator.version, span_regions(sp, t, escaped=False))
                            for f, s, sp, t in zip(flags, scores, found, texts)],
                "model_version": moderator.version}

    @router.post("/webhook")
    async def webhook(request: Request):
        body = await json_body(request)
        if body is None:
            return bad(400, "expected a JSON object")
        action = body.get("action")
        if action not in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            return {"status": "ignored", "action": action}
        if store_path is None:
            return bad(409, "this server was started without a feedback store (moderate serve --store DIR)")
        task, ann = body.get("task"), body.get("annotation")
        if not isinstance(task, dict) or not isinstance(ann, dict):
            return bad(400, f"{action}: payload needs 'task' and 'annotation' objects (enable 'send payload' on the webhook)")
        try:
            judgment = annotation_to_judgment(task, ann, moderator.taxonomy)
        except (ValueError, TypeError, KeyError) as e:
            return bad(422, f"task {task.get('id')}, annotation {ann.get('id')}: {e}")
        with store_lock:  # the store rewrites its file atomically; one writer at a time
            changed = FeedbackStore(store_path, names).add([judgment], replace=action == "ANNOTATION_UPDATED")
        return {"status": "stored" if changed else "unchanged", "key": judgment.key}

    return router
