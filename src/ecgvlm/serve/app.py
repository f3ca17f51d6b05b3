"""The HTTP app: interpretation, an OpenAI-compatible chat endpoint, health, and the web page.

``create_app(interpreter, ServeConfig(...))`` returns a FastAPI app; ``ecgvlm serve`` runs it under
uvicorn. The interpreter is anything with ``name``, ``processor.tokenizer``,
``interpret_batch(images)`` and ``complete(images, conversations, samplings, on_token)``
(``ECGInterpreter`` in practice). /v1/chat/completions speaks OpenAI's format, streaming included
(``openai_chat``); concurrent greedy chat requests share one generate batch. Every error is JSON
``{"error": {"message", "type"}}``; image bytes are never logged, only sizes and request ids.

The parts: ``errors`` (JSON errors and their handlers), ``state`` (``ServeConfig``, the shared
``ServerState`` with token, upload, admission and time-limit checks), ``routes_page`` (the web page,
static files, examples) and ``routes_api`` (health, models, interpret, chat).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Hashable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from ecgvlm.serve import examples as examples_pkg
from ecgvlm.serve.batcher import MicroBatcher
from ecgvlm.serve.errors import APIError, add_error_handlers, error_response
from ecgvlm.serve.limits import decode_image
from ecgvlm.serve.routes_api import add_api_routes
from ecgvlm.serve.routes_page import STATIC_TYPES, add_page_routes
from ecgvlm.serve.state import (
    DISCONNECT_POLL_S,
    DRAIN_CAP,
    MULTIPART_OVERHEAD,
    ChatJob,
    ServeConfig,
    ServerState,
)

__all__ = [
    "APIError",
    "ChatJob",
    "DISCONNECT_POLL_S",
    "DRAIN_CAP",
    "MULTIPART_OVERHEAD",
    "STATIC_TYPES",
    "RequestLog",
    "ServeConfig",
    "ServerState",
    "create_app",
    "error_response",
]

log = logging.getLogger("ecgvlm.serve")


class RequestLog:
    """One info line per request (id, method, path, status, size, time); sets ``request.state.rid``.

    Plain ASGI rather than ``@app.middleware("http")``: that wrapper hides a client's disconnect
    from the endpoint (``request.is_disconnected()`` stays False), and then abandoned requests
    would keep their place in the queue.
    """

    def __init__(self, app: Any, ids: Iterator[int]) -> None:
        self.app, self.ids = app, ids

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = next(self.ids)
        scope.setdefault("state", {})["rid"] = rid
        t0 = time.perf_counter()
        status = [0]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            size = dict(scope.get("headers") or []).get(b"content-length", b"?").decode("latin-1")
            ms = (time.perf_counter() - t0) * 1000
            log.info(
                "req %d %s %s -> %d (%s bytes in, %.0f ms)",
                rid,
                scope["method"],
                scope["path"],
                status[0],
                size,
                ms,
            )


def create_app(interpreter: Any, config: ServeConfig | None = None) -> FastAPI:
    config = config or ServeConfig()
    limits = config.limits

    def run_batch(key: Hashable, payloads: list[Any]) -> list[Any]:
        if key == "interpret":
            return [r.to_dict() for r in interpreter.interpret_batch(payloads)]
        return interpreter.complete(
            [p.image for p in payloads],
            [p.messages for p in payloads],
            [p.sampling for p in payloads],
            [p.on_token for p in payloads],
        )

    batcher = MicroBatcher(run_batch, config.max_batch, config.batch_wait_ms, config.queue_size)
    state = ServerState(interpreter, config, limits, batcher, itertools.count(1))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        if config.warm_up:
            try:
                img = decode_image(examples_pkg.read(), limits, "example")
                await batcher.submit("interpret", img)
                log.info("warm-up: one page takes %.2f s", batcher.item_seconds or 0.0)
            except Exception as e:  # a model that cannot interpret still serves chat: admit by queue
                log.warning("warm-up failed (%s); admission learns a page's cost from the first batch", e)
        log.info("serving %s (max batch %d, queue %d)", interpreter.name, config.max_batch, config.queue_size)
        yield
        await batcher.stop()

    app = FastAPI(title="ecgvlm", lifespan=lifespan, docs_url=None, redoc_url=None)  # docs pages need a CDN
    app.state.batcher = batcher
    app.state.config = config
    app.state.server = state
    add_error_handlers(app)
    app.add_middleware(RequestLog, ids=state.ids)
    add_page_routes(app)
    add_api_routes(app, state)
    return app
