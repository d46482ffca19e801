"""The ceiling: a bare aiohttp app that parses the same `add` form body and answers a fixed order.

`python -m bench.ceiling_app --port 8099`. Whatever panelflow's `add` reaches is measured against this.
"""

from __future__ import annotations

import argparse

import uvloop
from aiohttp import web

ORDER = {"order": 1}


async def api_v2(request: web.Request) -> web.Response:
    form = await request.post()
    if form.get("action") != "add" or not form.get("key"):
        return web.json_response({"error": "Invalid action"}, status=400)
    return web.json_response(ORDER)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/api/v2", api_v2)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    uvloop.install()
    web.run_app(create_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
