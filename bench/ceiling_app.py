"""The ceiling: a bare aiohttp app that parses the same form bodies and answers fixed ones.

`python -m bench.ceiling_app --port 8099`. `add` answers a fixed order; `status` with `orders` answers a fixed
answer of the same shape and size as panelflow's for as many ids (every order Pending). Whatever panelflow's
`add` and `status` reach is measured against this.
"""

from __future__ import annotations

import argparse
import json

import uvloop
from aiohttp import web

ORDER = {"order": 1}
# One order's `status` entry, as panelflow answers it for a Pending order of the benchmark's service.
STATUS_ENTRY = {"charge": "0.09000", "start_count": "0", "status": "Pending", "remains": "100", "currency": "USD"}
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def status_answer(ids: str) -> bytes:
    return _COMPACT_JSON.encode({token: STATUS_ENTRY for token in ids.split(",")}).encode()


async def api_v2(request: web.Request) -> web.Response:
    form = await request.post()
    if not form.get("key"):
        return web.json_response({"error": "Invalid API key"}, status=400)
    action = form.get("action")
    if action == "add":
        return web.json_response(ORDER)
    orders = form.get("orders")
    if action == "status" and isinstance(orders, str):
        return web.Response(body=status_answer(orders), content_type="application/json")
    return web.json_response({"error": "Invalid action"}, status=400)


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
