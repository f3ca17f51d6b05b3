"""The HTTP app: interpretation, an OpenAI-compatible chat endpoint, health, and the web page.

``create_app(interpreter, ServeConfig(...))`` returns a FastAPI app; ``ecgvlm serve`` runs it under
uvicorn. The interpreter is anything with ``name``, ``interpret_batch(images)`` and
``chat(images, prompts, max_new_tokens)`` (``ECGInterpreter`` in practice). Every error is JSON
``{"error": {"message", "type"}}``; image bytes are never logged, only sizes and request ids.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import itertools
import json
import logging
import time
from collections.abc import Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecgvlm.serve import examples as examples_pkg
from ecgvlm.serve.batcher import MicroBatcher, QueueFull
from ecgvlm.serve.limits import (
    Limits,
    MultipartImageReader,
    UploadRejected,
    decode_image,
    multipart_boundary,
    read_limited,
    too_large,
)

log = logging.getLogger("ecgvlm.serve")

MULTIPART_OVERHEAD = 64 * 1024  # headers and boundaries around the one file part
DRAIN_CAP = 64 * 1024 * 1024  # past this, stop reading a refused body and drop the connection


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

    @property
    def limits(self) -> Limits:
        return Limits(max_bytes=self.max_upload_bytes, max_pixels=self.max_pixels)


class APIError(Exception):
    def __init__(self, status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.headers = status, type_, message, headers or {}


def error_response(
    status: int, type_: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_}}, status_code=status, headers=headers)


def _static(name: str) -> bytes:
    return resources.files("ecgvlm.serve.static").joinpath(name).read_bytes()


STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def create_app(interpreter: Any, config: ServeConfig | None = None) -> FastAPI:
    config = config or ServeConfig()
    limits = config.limits
    ids = itertools.count(1)

    def run_batch(key: Hashable, payloads: list[Any]) -> list[Any]:
        if key == "interpret":
            return [r.to_dict() for r in interpreter.interpret_batch(payloads)]
        _, max_tokens = key
        return interpreter.chat([p[0] for p in payloads], [p[1] for p in payloads], max_tokens)

    batcher = MicroBatcher(run_batch, config.max_batch, config.batch_wait_ms, config.queue_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        log.info("serving %s (max batch %d, queue %d)", interpreter.name, config.max_batch, config.queue_size)
        yield
        await batcher.stop()

    app = FastAPI(title="ecgvlm", lifespan=lifespan, docs_url=None, redoc_url=None)  # docs pages need a CDN
    app.state.batcher = batcher
    app.state.config = config

    # ---- errors: always JSON --------------------------------------------------------------
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.type, exc.message, exc.headers)

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

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return error_response(500, "internal_error", "internal server error; see the server log")

    @app.middleware("http")
    async def _log_requests(request: Request, call_next):
        rid = next(ids)
        request.state.rid = rid
        t0 = time.perf_counter()
        response = await call_next(request)
        log.info(
            "req %d %s %s -> %d (%s bytes in, %.0f ms)",
            rid,
            request.method,
            request.url.path,
            response.status_code,
            request.headers.get("content-length", "?"),
            (time.perf_counter() - t0) * 1000,
        )
        return response

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

    async def submit(key: Hashable, payload: Any) -> Any:
        try:
            return await batcher.submit(key, payload)
        except QueueFull:
            raise APIError(
                503,
                "overloaded",
                f"server busy: {config.queue_size} requests already waiting; retry shortly",
                {"Retry-After": "1"},
            ) from None

    async def with_timeout(coro: Any) -> Any:
        try:
            return await asyncio.wait_for(coro, config.timeout_s)
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

        async def work() -> dict:
            data, name = await read_image_upload(request)
            img = await asyncio.to_thread(decode_image, data, limits, name)
            log.info("req %d: image %dx%d, %d bytes", request.state.rid, img.width, img.height, len(data))
            return await submit("interpret", img)

        return JSONResponse(await with_timeout(work()))

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        check_token(request)
        cap = limits.max_bytes * 4 // 3 + MULTIPART_OVERHEAD  # base64 grows data by a third
        check_length(request, cap)

        async def work() -> dict:
            body = await read_limited(request.stream(), cap, limits)
            req = parse_chat_request(body, config.max_chat_tokens)
            img = await asyncio.to_thread(decode_image, req["image"], limits, "image_url")
            log.info(
                "req %d: chat image %dx%d, %d bytes",
                request.state.rid,
                img.width,
                img.height,
                len(req["image"]),
            )
            text = await submit(("chat", req["max_tokens"]), (img, req["prompt"]))
            return chat_response(interpreter, text, req)

        return JSONResponse(await with_timeout(work()))

    return app


def parse_chat_request(body: bytes, max_tokens_cap: int) -> dict:
    """Pull (prompt, image bytes, max_tokens) out of an OpenAI chat request, with clear errors."""

    def bad(msg: str) -> APIError:
        return APIError(400, "invalid_request", msg)

    try:
        req = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise bad(f"the body is not valid JSON ({e})") from None
    if not isinstance(req, dict):
        raise bad("the body must be a JSON object with 'messages'")
    if req.get("stream"):
        raise bad("stream=true is not supported; omit it")
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise bad("no message with role 'user'")
    texts: list[str] = []
    images: list[bytes] = []
    for msg in users:
        content = msg.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise bad("message 'content' must be a string or a list of content parts")
        for part in parts:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                if msg is users[-1]:
                    texts.append(part["text"])
            elif kind == "image_url":
                ref = part.get("image_url")
                url = ref.get("url") if isinstance(ref, dict) else ref
                images.append(decode_data_url(url))
            else:
                raise bad(f"unsupported content part {kind!r}: use 'text' and 'image_url'")
    if len(images) != 1:
        raise bad(f"send exactly one ECG image as an 'image_url' content part (got {len(images)})")
    prompt = " ".join(t.strip() for t in texts if t.strip())
    if not prompt:
        raise bad("the last user message has no text question")
    max_tokens = req.get("max_completion_tokens", req.get("max_tokens", 128))
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise bad("'max_tokens' must be a positive integer")
    return {
        "prompt": prompt,
        "image": images[0],
        "max_tokens": min(max_tokens, max_tokens_cap),
        "model": req.get("model"),
    }


def decode_data_url(url: object) -> bytes:
    if not isinstance(url, str) or not url.startswith("data:"):
        raise APIError(
            400,
            "invalid_request",
            "image_url must be a data URL (data:image/png;base64,...); the server does not fetch remote images",
        )
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise APIError(
            400, "invalid_request", "image_url data URL must be base64-encoded (data:image/png;base64,...)"
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "invalid_request", "image_url holds invalid base64 data") from None


def chat_response(interpreter: Any, text: str, req: dict) -> dict:
    tokenizer = getattr(getattr(interpreter, "processor", None), "tokenizer", None)

    def count(s: str) -> int:
        return len(tokenizer(s, add_special_tokens=False)["input_ids"]) if tokenizer else 0

    prompt_tokens, completion_tokens = count(req["prompt"]), count(text)
    return {
        "id": f"chatcmpl-{time.time_ns():x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": interpreter.name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
