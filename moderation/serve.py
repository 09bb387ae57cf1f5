"""`moderate serve`: an OpenAI-compatible moderation endpoint for a model package you own.

    POST /v1/moderations   {"input": "text" | ["text", ...], "model": "..."}
      -> {"id": "modr-…", "model": "moderation-policy-0.4.0",
          "results": [{"flagged": bool, "categories": {name: bool}, "category_scores": {name: float},
                       "category_applied_input_types": {name: ["text"]},
                       "decision": "allow" | "review" | "block",
                       "taxonomy_categories": {ours: bool}, "taxonomy_scores": {ours: float}}]}
    GET  /health           open (no token): {"status": "UP", "model_version": …}
    + the Label Studio ML-backend protocol (labeling/backend.py): /setup, /predict, /webhook

Names: a category that has a counterpart in OpenAI's schema is returned under OpenAI's name
(OPENAI_NAMES: toxic → harassment, self_harm → self-harm, hate, violence, sexual), so the `openai`
client's typed objects carry it; the others (misleading, spam, a custom taxonomy's own) keep our name and
arrive in the typed objects' `model_extra`. OpenAI categories we do not model (illicit, sexual/minors,
…/threatening, …) are absent rather than a made-up False. `taxonomy_categories` / `taxonomy_scores` repeat
every result under the taxonomy's own names. `categories[c]` is "score reaches c's review threshold",
`flagged` is any of them, and `decision` (our addition; clients ignore unknown fields) says whether a block
threshold was reached. The `model` field of a request is
accepted and ignored — clients written for a hosted API send one — and the response names the model
that actually answered.

Concurrency: requests do not score one by one. Each puts its texts on a queue; one worker takes what is
waiting (up to `max_batch` texts, waiting at most `max_wait_ms` for more), scores it in a single ONNX run
in a worker thread, and hands each request its rows. Under load this approaches batch throughput; a lone
request waits at most `max_wait_ms` extra. Scores do not depend on batch-mates (measured: 1e-7).

Auth: with $MODERATION_API_TOKEN set, every route but /health needs `Authorization: Bearer <token>`
(Label Studio's ML-backend basic auth works too, with the token as the password). The token is never
logged or echoed. The server binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Union

import numpy as np
from fastapi import Request  # module level: FastAPI resolves the handlers' (string) annotations here
from pydantic import BaseModel, ConfigDict

from moderation.spans import span_mode

TOKEN_ENV = "MODERATION_API_TOKEN"


@dataclass
class ServeConfig:
    max_batch: int = 64  # texts per ONNX run
    max_wait_ms: float = 5.0  # how long the batcher waits to fill a batch
    max_inputs: int = 256  # texts per request
    max_chars: int = 100_000  # characters per text
    max_body_bytes: int = 16 * 1024 * 1024


class ModerationRequest(BaseModel):
    """The OpenAI moderation request body (unknown fields are ignored, as clients may add some)."""

    model_config = ConfigDict(extra="ignore")
    input: Union[str, list[str]]
    model: Union[str, None] = None
    # Ours, not OpenAI's: also return each flagged category's evidence as character spans of the input
    # (openai client: extra_body={"spans": True}; each result then has an extra "spans" list). "all": the
    # span head's marks in its categories even where the text is not flagged.
    spans: Union[bool, Literal["flagged", "all"]] = False


class MicroBatcher:
    """Gathers concurrent requests' texts into shared ONNX runs (one worker thread owns the session)."""

    def __init__(self, score_fn, max_batch: int, max_wait_ms: float):
        self.score_fn = score_fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.queue: asyncio.Queue | None = None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx")
        self.task: asyncio.Task | None = None
        self.batches = 0

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def score(self, texts: list[str]) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self.queue.get()]
            size = len(jobs[0][0])
            deadline = loop.time() + self.max_wait
            while size < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                jobs.append(job)
                size += len(job[0])
            texts = [t for job, _ in jobs for t in job]
            self.batches += 1
            try:
                scores = await loop.run_in_executor(self.pool, self.score_fn, texts)
            except Exception:  # noqa: BLE001 - one bad request must not fail its batch-mates: score them alone
                for job, future in jobs:
                    try:
                        result = await loop.run_in_executor(self.pool, self.score_fn, job)
                        if not future.done():
                            future.set_result(result)
                    except Exception as e:  # noqa: BLE001
                        if not future.done():
                            future.set_exception(e)
                continue
            start = 0
            for job, future in jobs:
                if not future.done():
                    future.set_result(scores[start : start + len(job)])
                start += len(job)


# Our category → OpenAI's name for the same harm (docs/serving.md explains each choice). toxic maps to
# harassment: OpenAI defines it as harassing language towards any target, which is what our toxic labels
# (insults, profanity aimed at someone) mark.
OPENAI_NAMES = {"toxic": "harassment", "hate": "hate", "violence": "violence", "sexual": "sexual", "self_harm": "self-harm"}


def openai_result(flags: dict[str, bool], scores: dict[str, float], decision: str) -> dict:
    """One /v1/moderations result: OpenAI's names where they exist, ours for the rest and in taxonomy_*."""
    named = {c: OPENAI_NAMES.get(c, c) for c in scores}
    return {"flagged": any(flags.values()),
            "categories": {named[c]: bool(v) for c, v in flags.items()},
            "category_scores": {named[c]: float(v) for c, v in scores.items()},
            "category_applied_input_types": {named[c]: ["text"] for c in scores},
            "decision": decision,
            "taxonomy_categories": dict(flags), "taxonomy_scores": dict(scores)}


def check_auth(header: str | None, token: str | None) -> bool:
    """Bearer <token>, or HTTP basic auth with the token as the password (Label Studio's ML-backend auth)."""
    if not token:
        return True
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(value.strip().encode(), token.encode())
    if scheme.lower() == "basic":
        try:
            _, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(password.encode(), token.encode())
    return False


def create_app(moderator, config: ServeConfig | None = None, token: str | None = None, store_dir=None):
    """The FastAPI app around a loaded `Moderator`. `store_dir` receives Label Studio webhook judgments."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from labeling.backend import backend_router

    cfg = config or ServeConfig()
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    batcher = MicroBatcher(moderator.score, cfg.max_batch, cfg.max_wait_ms)
    model_name = f"{moderator.manifest.get('name', 'moderation-policy')}-{moderator.version}"

    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="moderation", version=moderator.version, lifespan=lifespan,
                  description="OpenAI-compatible /v1/moderations and the Label Studio ML-backend protocol.")
    app.state.batcher, app.state.moderator, app.state.config, app.state.model_name = batcher, moderator, cfg, model_name

    def error(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}}, status_code=status)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path != "/health" and not check_auth(request.headers.get("authorization"), token):
            return error(401, "missing or wrong API token (send Authorization: Bearer <token>)", kind="authentication_error")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cfg.max_body_bytes:
            return error(413, f"request body of {length} bytes exceeds the limit of {cfg.max_body_bytes} bytes")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors():
            if e.get("type") == "json_invalid":
                return error(400, f"request body is not valid JSON (at character {e.get('loc', ('', '?'))[-1]})")
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body",)) or "body"
            problems.append(f"{where}: {e.get('msg')}")
        return error(400, "invalid request body: " + "; ".join(problems[:5]))

    @app.get("/health")
    async def health():
        return {"status": "UP", "model_class": "moderation-policy", "model_version": moderator.version, "model": model_name}

    @app.post("/v1/moderations")
    async def moderations(body: ModerationRequest):
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not texts:
            return error(400, "input is an empty list; send a string or a non-empty list of strings", "input")
        if len(texts) > cfg.max_inputs:
            return error(413, f"input has {len(texts)} items; at most {cfg.max_inputs} per request", "input")
        for i, t in enumerate(texts):
            if len(t) > cfg.max_chars:
                return error(413, f"input[{i}] has {len(t)} characters; at most {cfg.max_chars} per text", "input")
        if body.spans:
            if not moderator.has_token_probs:
                return error(400, f"model {moderator.version} has no per-token output, so no spans; export it again", "spans")
            # on the batcher's thread, which owns the ONNX session; not merged with other requests' batches
            loop = asyncio.get_running_loop()
            scores, found = await loop.run_in_executor(batcher.pool, moderator.score_with_spans, texts, span_mode(body.spans))
        else:
            scores, found = await batcher.score(texts), None
        results = []
        for i, r in enumerate(moderator.results_from_scores(scores)):
            results.append(openai_result(r.categories, r.scores, r.decision))
            if found is not None:
                results[-1]["spans"] = [s.to_dict() for s in found[i]]
        return {"id": f"modr-{uuid.uuid4().hex}", "model": model_name, "results": results, "created": int(time.time())}

    app.include_router(backend_router(moderator, batcher, store_dir, cfg))
    return app


def serve(model_path, host: str = "127.0.0.1", port: int = 8000, config: ServeConfig | None = None, store_dir=None,
          threads: int | None = None, log_level: str = "info", platform: str | None = None) -> None:
    import uvicorn

    from moderation.runtime import Moderator

    moderator = Moderator.load(model_path, threads=threads, platform=platform)
    uvicorn.run(create_app(moderator, config, store_dir=store_dir), host=host, port=port, log_level=log_level)
