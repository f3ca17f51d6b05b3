"""The web page's routes: ``/``, ``/static/{name}``, ``/v1/examples`` and ``/examples/{name}``."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

from ecgvlm.serve import examples as examples_pkg
from ecgvlm.serve.errors import APIError

STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _static(name: str) -> bytes:
    return resources.files("ecgvlm.serve.static").joinpath(name).read_bytes()


def add_page_routes(app: FastAPI) -> None:
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
