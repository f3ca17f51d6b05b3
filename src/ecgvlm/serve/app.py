"""The HTTP app: interpretation, an OpenAI-compatible chat endpoint, health, and the web page.

``create_app(interpreter, ServeConfig(...))`` returns a FastAPI app; ``ecgvlm serve`` runs it under
uvicorn. The interpreter is anything with ``name``, ``processor.tokenizer``,
``interpret_batch(images)`` and ``complete(images, conversations, samplings, on_token)``
(``ECGInterpreter`` in practice). /v1/chat/completions speaks OpenAI's format, streaming included
(``openai_chat``); concurrent greedy chat requests share one generate batch. Every error is JSON
``{"error": {"message", "type"}}``; image bytes are never logged, only sizes and request ids.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import math
import time
from collections.abc import Hashable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ecgvlm.serve import examples as examples_pkg
from ecgvlm.serve.batcher import MicroBatcher, QueueFull
from ecgvlm.serve.limits import (
    Limits,
    MultipartImageReader,
    UploadRejected,
    decode_image,
    multipart_boundary,
    read_limited,
    refuse_non_ecg,
    too_large,
)
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


class APIError(Exception):
    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.headers = status, type_, message, headers or {}
        self.param = param


def error_response(
    status: int, type_: str, message: str, headers: dict[str, str] | None = None, param: str | None = None
) -> JSONResponse:
    error = {"message": message, "type": type_}
    if param is not None:  # OpenAI's field naming the offending request parameter
        error["param"] = param
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _static(name: str) -> bytes:
    return resources.files("ecgvlm.serve.static").joinpath(name).read_bytes()


STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


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
    ids = itertools.count(1)

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

    # ---- errors: always JSON --------------------------------------------------------------
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.type, exc.message, exc.headers, exc.param)

    @app.exception_handler(UploadRejected)
    async def _rejected(request: Request, exc: UploadRejected) -> JSONResponse:
        return error_response(exc.status, exc.type, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {
            404: f"no such endpoint: {request.url.path}",
            405: f"method {request.method} not allowed here",
        }
        return error_response(exc.status_code, "http_error", messages.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "invalid_request", f"invalid request: {exc.errors()[:3]}")

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # a client that hangs up mid-upload is no server fault: one info line, no traceback
        log.info("req %d: the client disconnected during the upload", getattr(request.state, "rid", 0))
        return error_response(499, "client_closed_request", "the client closed the connection")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return error_response(500, "internal_error", "internal server error; see the server log")

    app.add_middleware(RequestLog, ids=ids)

    # ---- helpers --------------------------------------------------------------------------
    def check_token(request: Request) -> None:
        if not config.token:
            return
        auth = request.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), config.token.encode()
        ):
            raise APIError(
                401,
                "unauthorized",
                "missing or wrong API token: send the header 'Authorization: Bearer <token>'",
                {"WWW-Authenticate": "Bearer"},
            )

    def check_length(request: Request, cap: int) -> None:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise too_large(int(declared), limits)

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

    async def read_image_upload(request: Request) -> tuple[bytes, str]:
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

    def busy(message: str, wait: float | None, left: float) -> APIError:
        retry = 1 if wait is None else max(1, math.ceil(wait - left))
        return APIError(
            503, "overloaded", f"server busy: {message}; retry later", {"Retry-After": str(retry)}
        )

    async def submit(
        key: Hashable, payload: Any, request: Request | None = None, deadline: float | None = None
    ) -> Any:
        """The job's result. Refused at once (503) when the work ahead would take it past its time
        limit; dropped from the queue when its client disconnects while waiting."""
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

    async def with_timeout(coro: Any, deadline: float | None = None) -> Any:
        """Await ``coro`` for the request's time limit (or what is left of it before ``deadline``)."""
        limit = config.timeout_s if deadline is None else deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(coro, max(limit, 0.0))
        except asyncio.TimeoutError:
            raise APIError(
                504, "timeout", f"the request took longer than the {config.timeout_s:g} s limit"
            ) from None

    # ---- endpoints ------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        suffix = name[name.rfind(".") :] if "." in name else ""
        if "/" in name or suffix not in STATIC_TYPES:
            raise APIError(404, "not_found", f"no such file: {name}")
        try:
            return Response(_static(name), media_type=STATIC_TYPES[suffix])
        except FileNotFoundError:
            raise APIError(404, "not_found", f"no such file: {name}") from None

    @app.get("/v1/examples")
    async def examples() -> dict:
        return {
            "examples": [
                {"name": n, "title": examples_pkg.title(n), "url": f"/examples/{n}"}
                for n in examples_pkg.names()
            ]
        }

    @app.get("/examples/{name}", include_in_schema=False)
    async def example(name: str) -> Response:
        try:
            return Response(examples_pkg.read(name), media_type="image/png")
        except FileNotFoundError:
            raise APIError(404, "not_found", f"no such example: {name}") from None

    @app.get("/health")
    async def health() -> dict:
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

    @app.get("/v1/models")
    async def models(request: Request) -> dict:
        check_token(request)
        return {"object": "list", "data": [{"id": interpreter.name, "object": "model", "owned_by": "ecgvlm"}]}

    @app.post("/v1/interpret")
    async def interpret(request: Request) -> JSONResponse:
        check_token(request)
        check_length(request, limits.max_bytes + MULTIPART_OVERHEAD)
        deadline = asyncio.get_running_loop().time() + config.timeout_s

        async def work() -> dict:
            data, name = await read_image_upload(request)
            img = refuse_non_ecg(await asyncio.to_thread(decode_image, data, limits, name), name)
            log.info("req %d: image %dx%d, %d bytes", request.state.rid, img.width, img.height, len(data))
            return await submit("interpret", img, request, deadline)

        return JSONResponse(await with_timeout(work(), deadline))

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        check_token(request)
        cap = limits.max_bytes * 4 // 3 + MULTIPART_OVERHEAD  # base64 grows data by a third
        check_length(request, cap)
        deadline = asyncio.get_running_loop().time() + config.timeout_s

        async def prepare() -> tuple[ChatRequest, Any]:
            body = await read_limited(request.stream(), cap, limits)
            try:
                req = parse_chat_request(body, config.max_chat_tokens)
            except ChatRequestError as e:
                raise APIError(400, "invalid_request_error", e.message, param=e.param) from None
            img = refuse_non_ecg(
                await asyncio.to_thread(decode_image, req.image, limits, "image_url"), "image_url"
            )
            log.info(
                "req %d: chat image %dx%d, %d bytes, %d messages",
                request.state.rid,
                img.width,
                img.height,
                len(req.image),
                len(req.messages),
            )
            return req, img

        req, img = await with_timeout(prepare(), deadline)
        # Seeded sampling runs alone so the seed alone decides the answer (a batch would pad it).
        key = (
            ("chat", next(ids)) if req.sampling.temperature > 0 and req.sampling.seed is not None else "chat"
        )
        cid = f"chatcmpl-{time.time_ns():x}"
        if not req.stream:
            done = await with_timeout(
                submit(key, ChatJob(img, req.messages, req.sampling), request, deadline), deadline
            )
            return JSONResponse(completion_response(cid, interpreter.name, tokenizer(), done, req.logprobs))
        return await stream_chat(key, cid, req, img, deadline)

    def tokenizer():
        return interpreter.processor.tokenizer

    async def stream_chat(key: Hashable, cid: str, req: ChatRequest, img: Any, deadline: float) -> Response:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def on_token(token: Any) -> None:  # called on the model thread
            loop.call_soon_threadsafe(events.put_nowait, token)

        task = asyncio.create_task(
            submit(key, ChatJob(img, req.messages, req.sampling, on_token), None, deadline)
        )
        task.add_done_callback(lambda _: events.put_nowait(None))
        await asyncio.sleep(0)  # let it reach the queue: a full queue is a 503 before any byte is sent
        if task.done() and task.exception() is not None:
            raise task.exception()
        name = interpreter.name

        async def body():
            try:
                async for event in stream_events():
                    yield event
            finally:  # also when the client goes away: a job not yet started is then skipped
                if not task.done():
                    task.cancel()

        async def stream_events():
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
                    f"the request took longer than the {config.timeout_s:g} s limit"
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

        return StreamingResponse(
            body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return app


@dataclass
class ChatJob:
    image: Any
    messages: list[dict]
    sampling: Any
    on_token: Any = None
