"""The api's self-description: `GET /openapi.json` (built from the code's tables at start, with this process's
settings) and `GET /docs`, a reference page rendered by the vendored Redoc bundle. Neither needs a key."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from shared.apidoc.document import build, render
from shared.settings import Settings

ASSETS = Path(__file__).resolve().parent / "reference"
# The page may load nothing but this origin (Redoc's sidebar would fetch its vendor's logo from a CDN; blocked,
# the image hides itself). Inline script: the page's one Redoc.init call; blob: workers: Redoc's search index.
DOCS_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
    "'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'",
}
DOCUMENT = web.AppKey("openapi_document", bytes)


def add_reference_routes(app: web.Application, settings: Settings) -> None:
    app[DOCUMENT] = render(build(settings)).encode()
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs_page)
    app.router.add_get("/docs/redoc.standalone.js", redoc_bundle)


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[DOCUMENT], content_type="application/json")


async def docs_page(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(ASSETS / "docs.html", headers=DOCS_HEADERS)


async def redoc_bundle(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(ASSETS / "redoc.standalone.js", headers={"Content-Type": "text/javascript"})
