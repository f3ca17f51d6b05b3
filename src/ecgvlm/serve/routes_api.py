"""The API routes: ``/health``, ``/v1/models``, ``/v1/interpret`` and ``/v1/chat/completions``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ecgvlm.serve.errors import APIError
from ecgvlm.serve.limits import decode_image, read_limited, refuse_non_ecg
from ecgvlm.serve.openai_chat import (
    ChatRequest,
    ChatRequestError,
    StreamText,
    chunk,
    completion_response,
    logprob_content,
    parse_chat_request,
    sse,
    usage,
)
from ecgvlm.serve.state import MULTIPART_OVERHEAD, ChatJob, ServerState

log = logging.getLogger("ecgvlm.serve")


def health_report(state: ServerState) -> dict:
    interpreter, config, batcher = state.interpreter, state.config, state.batcher
    return {
        "status": "ok",
        "model": interpreter.name,
        "warning": getattr(interpreter, "warning", None),
        "not_asked": getattr(interpreter, "skipped", {}),
        "auth_required": bool(config.token),
        "queue": {
            "waiting": batcher.pending,
            "capacity": config.queue_size,
            "max_batch": config.max_batch,
            "seconds_per_item": None if batcher.item_seconds is None else round(batcher.item_seconds, 3),
            "expected_wait_s": None if (w := batcher.expected_wait()) is None else round(w, 1),
            "dropped": batcher.dropped,
        },
        "batches": {
            "count": batcher.stats.batches,
            "items": batcher.stats.items,
            "largest": batcher.stats.largest,
        },
        "limits": {"max_upload_bytes": config.max_upload_bytes, "max_pixels": config.max_pixels},
    }


def add_api_routes(app: FastAPI, state: ServerState) -> None:
    config, limits, interpreter = state.config, state.limits, state.interpreter

    @app.get("/health")
    async def health() -> dict:
        return health_report(state)

    @app.get("/v1/models")
    async def models(request: Request) -> dict:
        state.check_token(request)
        return {"object": "list", "data": [{"id": interpreter.name, "object": "model", "owned_by": "ecgvlm"}]}

    @app.post("/v1/interpret")
    async def interpret(request: Request) -> JSONResponse:
        state.check_token(request)
        state.check_length(request, limits.max_bytes + MULTIPART_OVERHEAD)
        deadline = asyncio.get_running_loop().time() + config.timeout_s

        async def work() -> dict:
            data, name = await state.read_image_upload(request)
            img = refuse_non_ecg(await asyncio.to_thread(decode_image, data, limits, name), name)
            log.info("req %d: image %dx%d, %d bytes", request.state.rid, img.width, img.height, len(data))
            return await state.submit("interpret", img, request, deadline)

        return JSONResponse(await state.with_timeout(work(), deadline))

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        state.check_token(request)
        cap = limits.max_bytes * 4 // 3 + MULTIPART_OVERHEAD  # base64 grows data by a third
        state.check_length(request, cap)
        deadline = asyncio.get_running_loop().time() + config.timeout_s
        req, img = await state.with_timeout(prepare_chat(state, request, cap), deadline)
        # Seeded sampling runs alone so the seed alone decides the answer (a batch would pad it).
        key = (
            ("chat", next(state.ids))
            if req.sampling.temperature > 0 and req.sampling.seed is not None
            else "chat"
        )
        cid = f"chatcmpl-{time.time_ns():x}"
        if not req.stream:
            done = await state.with_timeout(
                state.submit(key, ChatJob(img, req.messages, req.sampling), request, deadline), deadline
            )
            return JSONResponse(
                completion_response(cid, interpreter.name, state.tokenizer(), done, req.logprobs)
            )
        return await stream_chat(state, key, cid, req, img, deadline)


async def prepare_chat(state: ServerState, request: Request, cap: int) -> tuple[ChatRequest, Any]:
    """Read and parse a chat request; decode (and check) its one image."""
    limits = state.limits
    body = await read_limited(request.stream(), cap, limits)
    try:
        req = parse_chat_request(body, state.config.max_chat_tokens)
    except ChatRequestError as e:
        raise APIError(400, "invalid_request_error", e.message, param=e.param) from None
    img = refuse_non_ecg(await asyncio.to_thread(decode_image, req.image, limits, "image_url"), "image_url")
    log.info(
        "req %d: chat image %dx%d, %d bytes, %d messages",
        request.state.rid,
        img.width,
        img.height,
        len(req.image),
        len(req.messages),
    )
    return req, img


async def stream_chat(
    state: ServerState, key: Hashable, cid: str, req: ChatRequest, img: Any, deadline: float
) -> Response:
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()

    def on_token(token: Any) -> None:  # called on the model thread
        loop.call_soon_threadsafe(events.put_nowait, token)

    task = asyncio.create_task(
        state.submit(key, ChatJob(img, req.messages, req.sampling, on_token), None, deadline)
    )
    task.add_done_callback(lambda _: events.put_nowait(None))
    await asyncio.sleep(0)  # let it reach the queue: a full queue is a 503 before any byte is sent
    if task.done() and task.exception() is not None:
        raise task.exception()

    async def body():
        try:
            async for event in stream_events(state, cid, req, events, task, deadline):
                yield event
        finally:  # also when the client goes away: a job not yet started is then skipped
            if not task.done():
                task.cancel()

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def stream_events(
    state: ServerState,
    cid: str,
    req: ChatRequest,
    events: asyncio.Queue,
    task: asyncio.Task,
    deadline: float,
):
    """The server-sent events of one streamed completion, ``[DONE]`` last."""
    loop = asyncio.get_running_loop()
    name, tokenizer = state.interpreter.name, state.tokenizer
    text = StreamText(tokenizer())
    yield sse(chunk(cid, name, {"role": "assistant", "content": ""}))
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            token = await asyncio.wait_for(events.get(), remaining)
            if token is None:
                break
            lp = {"content": logprob_content(tokenizer(), [token])} if req.logprobs else None
            yield sse(chunk(cid, name, {"content": text.push(token.id)}, logprobs=lp))
        done = task.result()
    except Exception as e:  # the status line is sent: report in the stream, then end it
        message = (
            f"the request took longer than the {state.config.timeout_s:g} s limit"
            if isinstance(e, asyncio.TimeoutError)
            else getattr(e, "message", "internal server error; see the server log")
        )
        log.warning("req stream %s failed: %s", cid, message)
        yield sse({"error": {"message": message, "type": "stream_error"}})
        yield sse("[DONE]")
        return
    tail = text.finish(done.text)
    yield sse(chunk(cid, name, {"content": tail} if tail else {}, finish_reason=done.finish_reason))
    if req.include_usage:
        final = chunk(cid, name, {})
        final["choices"], final["usage"] = [], usage(done)
        yield sse(final)
    yield sse("[DONE]")
