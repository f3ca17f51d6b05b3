"""Errors as JSON: ``APIError``, ``error_response`` and the app's exception handlers.

Every error the server sends is ``{"error": {"message", "type"}}`` (plus ``param`` where OpenAI's
format names the offending field).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ecgvlm.serve.limits import UploadRejected

log = logging.getLogger("ecgvlm.serve")


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


def add_error_handlers(app: FastAPI) -> None:
    """Make every error JSON: API errors, refused uploads, 404/405, bad requests, hang-ups, bugs."""

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
