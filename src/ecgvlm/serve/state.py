"""The server's shared state (``ServerState``) and the request plumbing every API route uses:
the token check, size-limited uploads, admission to the batcher, and the time limit."""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from ecgvlm.serve.batcher import MicroBatcher, QueueFull
from ecgvlm.serve.errors import APIError
from ecgvlm.serve.limits import (
    Limits,
    MultipartImageReader,
    UploadRejected,
    multipart_boundary,
    read_limited,
    too_large,
)

log = logging.getLogger("ecgvlm.serve")

MULTIPART_OVERHEAD = 64 * 1024  # headers and boundaries around the one file part
DRAIN_CAP = 64 * 1024 * 1024  # past this, stop reading a refused body and drop the connection
DISCONNECT_POLL_S = 0.25  # how often a waiting request checks that its client is still there


@dataclass
class ServeConfig:
    max_batch: int = 8
    batch_wait_ms: float = 10.0
    queue_size: int = 64
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    timeout_s: float = 60.0
    token: str | None = None
    max_chat_tokens: int = 256
    # interpret a bundled example before serving, so admission knows a page's cost from the first
    # request (without it, only the queue's size limits admission until a batch has been timed)
    warm_up: bool = True

    @property
    def limits(self) -> Limits:
        return Limits(max_bytes=self.max_upload_bytes, max_pixels=self.max_pixels)


@dataclass
class ChatJob:
    image: Any
    messages: list[dict]
    sampling: Any
    on_token: Any = None


async def drain(request: Request, already: int) -> None:
    """Read (and drop) the rest of a refused body so the client can read our 413 cleanly."""
    seen = already
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > DRAIN_CAP:
                break
    except Exception:  # the client went away; nothing to tell it
        pass


def busy(message: str, wait: float | None, left: float) -> APIError:
    retry = 1 if wait is None else max(1, math.ceil(wait - left))
    return APIError(503, "overloaded", f"server busy: {message}; retry later", {"Retry-After": str(retry)})


@dataclass
class ServerState:
    """What the routes share: the model, the settings, the batcher and the request-id counter."""

    interpreter: Any
    config: ServeConfig
    limits: Limits
    batcher: MicroBatcher
    ids: Iterator[int]

    def tokenizer(self) -> Any:
        return self.interpreter.processor.tokenizer

    def check_token(self, request: Request) -> None:
        token = self.config.token
        if not token:
            return
        auth = request.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise APIError(
                401,
                "unauthorized",
                "missing or wrong API token: send the header 'Authorization: Bearer <token>'",
                {"WWW-Authenticate": "Bearer"},
            )

    def check_length(self, request: Request, cap: int) -> None:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise too_large(int(declared), self.limits)

    async def read_image_upload(self, request: Request) -> tuple[bytes, str]:
        limits = self.limits
        ctype = request.headers.get("content-type", "")
        boundary = multipart_boundary(ctype)
        cap = limits.max_bytes + (MULTIPART_OVERHEAD if boundary else 0)
        if boundary:
            reader = MultipartImageReader(boundary, limits)
            total = 0
            try:
                async for chunk in request.stream():
                    total += len(chunk)
                    if total > cap:
                        raise too_large(None, limits)
                    reader.feed(chunk)
            except UploadRejected:
                await drain(request, total)
                raise
            if not reader.found:
                raise APIError(
                    400,
                    "invalid_request",
                    "no file in the form: send the image as the multipart field 'image'",
                )
            return bytes(reader.data), reader.filename or "upload"
        if ctype.startswith("image/") or ctype.startswith("application/octet-stream"):
            try:
                return await read_limited(request.stream(), cap, limits), "upload"
            except UploadRejected:
                await drain(request, cap)
                raise
        raise UploadRejected(
            415,
            "unsupported_media_type",
            "send multipart/form-data with an 'image' file field, or the raw image bytes with Content-Type image/png",
        )

    async def submit(
        self, key: Hashable, payload: Any, request: Request | None = None, deadline: float | None = None
    ) -> Any:
        """The job's result. Refused at once (503) when the work ahead would take it past its time
        limit; dropped from the queue when its client disconnects while waiting."""
        config, batcher = self.config, self.batcher
        loop = asyncio.get_running_loop()
        left = config.timeout_s if deadline is None else deadline - loop.time()
        ok, wait = batcher.admits(left)
        if not ok:
            raise busy(
                f"about {wait:.0f} s of work is ahead of this request, past its {left:.0f} s limit",
                wait,
                left,
            )
        task = asyncio.ensure_future(batcher.submit(key, payload))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
                if done:
                    return task.result()
                if request is not None and await request.is_disconnected():
                    log.info("req %d: the client left while waiting; its job is dropped", request.state.rid)
                    raise APIError(499, "client_closed_request", "the client closed the connection")
        except QueueFull:
            raise busy(
                f"{config.queue_size} requests already waiting", batcher.expected_wait(), left
            ) from None
        finally:
            if not task.done():
                task.cancel()  # timed out or gone: the worker skips a cancelled job

    async def with_timeout(self, coro: Any, deadline: float | None = None) -> Any:
        """Await ``coro`` for the request's time limit (or what is left of it before ``deadline``)."""
        timeout_s = self.config.timeout_s
        limit = timeout_s if deadline is None else deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(coro, max(limit, 0.0))
        except asyncio.TimeoutError:
            raise APIError(
                504, "timeout", f"the request took longer than the {timeout_s:g} s limit"
            ) from None
