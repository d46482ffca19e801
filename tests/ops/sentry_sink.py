"""A local HTTP server acting as Sentry's ingest endpoint: DSN `http://public@127.0.0.1:<port>/1`."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class SentrySink:
    envelopes: list[str] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.port}/1"

    async def _receive(self, request: web.Request) -> web.Response:
        # aiohttp already undoes the Content-Encoding it knows; anything still compressed is undone here.
        raw = await request.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        self.envelopes.append(raw.decode(errors="replace"))
        return web.json_response({"id": "0" * 32})

    async def start(self) -> SentrySink:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/api/1/envelope/", self._receive)
        app.router.add_post("/api/1/store/", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def events(self) -> list[str]:
        """Envelopes that carry an error event (not sessions or client reports)."""
        return [e for e in self.envelopes if '"type":"event"' in e.replace(" ", "")]
