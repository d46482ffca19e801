"""The webhook receiver of the run: a real aiohttp server that verifies every delivery's signature (with an
independent Standard Webhooks verifier, not our signing module) and records it. `down()` closes it (connections
refused) until `up()` opens it again on the same port; the records live outside the server and survive."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.webhooks import spec_verify


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    account_id: int  # from the path the endpoint was registered with
    type: str
    data: dict[str, Any]


@dataclass
class Receiver:
    secrets: dict[int, str]  # account id -> whsec_ secret
    port: int
    deliveries: list[Delivery] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)  # why a request was refused
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            account_id = int(request.match_info["account"])
            secret = self.secrets[account_id]
        except (KeyError, ValueError):
            self.rejected["unknown endpoint"] += 1
            return web.Response(status=404)
        try:
            verified = spec_verify(secret, headers, body)
        except (KeyError, ValueError):
            verified = False
        if not verified:
            self.rejected["bad signature"] += 1
            return web.Response(status=401)
        try:
            event = json.loads(body)
            self.deliveries.append(Delivery(headers["webhook-id"], account_id, str(event["type"]), event["data"]))
        except (ValueError, KeyError, TypeError):
            self.rejected["malformed body"] += 1
            return web.Response(status=400)
        return web.Response(status=204)

    async def up(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_post("/hook/{account}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        self._runner = runner

    async def down(self) -> None:
        """Stop listening and close every connection: the dispatchers get refused connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
