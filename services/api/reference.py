"""The api's self-description: `GET /openapi.json` (built from the code's tables at start, with this process's
settings) and `GET /docs`, a reference page rendered by the vendored Redoc bundle. Neither needs a key."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from shared.apidoc.document import build, render
from shared.settings import Settings

ASSETS = Path(__file__).resolve().parent / "reference"
DOCUMENT = web.AppKey("openapi_document", bytes)


def add_reference_routes(app: web.Application, settings: Settings) -> None:
    app[DOCUMENT] = render(build(settings)).encode()
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs_page)
    app.router.add_get("/docs/redoc.standalone.js", redoc_bundle)


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[DOCUMENT], content_type="application/json")


async def docs_page(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(ASSETS / "docs.html", headers={"Content-Type": "text/html; charset=utf-8"})


async def redoc_bundle(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(ASSETS / "redoc.standalone.js", headers={"Content-Type": "text/javascript"})
