"""Webhook test support: real aiohttp receivers, a DNS resolver the test controls, and an independent
Standard Webhooks verifier written from the spec (not from our signing module)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from shared.settings import Settings
from tests.support.processes import ROOT, settings_env

PANELFLOW = Path(sys.executable).parent / "panelflow"

# Test receivers listen here; the webhook settings of the tests allow exactly this address.
RECEIVER_HOST = "127.0.0.2"
RECEIVER_NETWORK = "127.0.0.2/32"


async def webhooks_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`panelflow webhooks <args>` run as the installed command with `settings` as its environment."""

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PANELFLOW), "webhooks", *args],
            cwd=ROOT,
            env=settings_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
        )

    return await asyncio.to_thread(run)


def spec_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks, verbatim from the spec: base64(HMAC-SHA256(base64decode(secret without whsec_),
    "{msg_id}.{timestamp}.{body}")), compared with each space-separated `v1,<sig>` of the header."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body.decode()}"
    expected = base64.b64encode(hmac.new(key, content.encode(), hashlib.sha256).digest()).decode()
    for versioned in headers["webhook-signature"].split(" "):
        version, sig = versioned.split(",", 1)
        if version == "v1" and hmac.compare_digest(sig, expected):
            return True
    return False


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


Behaviour = Callable[[web.Request, "Receiver"], Awaitable[web.StreamResponse]]


async def ok(_request: web.Request, _receiver: Receiver) -> web.StreamResponse:
    return web.Response(text="ok")


@dataclass
class Receiver:
    """A real HTTP server recording every webhook it is sent. `behaviour` decides each answer."""

    behaviour: Behaviour = ok
    host: str = RECEIVER_HOST
    hits: list[Hit] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    closed_early: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.hits.append(Hit(request.path, {k.lower(): v for k, v in request.headers.items()}, body, time.monotonic()))
        self.arrived.set()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.behaviour(request, self)
        finally:
            self.in_flight -= 1

    async def start(self, port: int = 0) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "/hook", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def ids(self, path: str | None = None) -> list[str]:
        return [h.headers["webhook-id"] for h in self.hits if path is None or h.path == path]


class FakeResolver(AbstractResolver):
    """DNS the test controls: `answers[host]` is the list of addresses `host` resolves to right now."""

    def __init__(self, answers: dict[str, list[str]] | None = None) -> None:
        self.answers = answers or {}
        self.queries: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.queries.append(host)
        if host not in self.answers:
            raise OSError(f"{host}: no such host")
        return [
            {
                "hostname": host,
                "host": ip,
                "port": port,
                "family": socket.AF_INET6 if ":" in ip else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for ip in self.answers[host]
        ]

    async def close(self) -> None:
        return None


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


# --- data helpers: through the same use cases and SQL the api and the consumer use ---------------------------


async def register(
    pool: Any,
    settings: Any,
    *,
    account_id: int,
    url: str,
    events: str | None = None,
    resolver: AbstractResolver | None = None,
) -> tuple[int, str]:
    from shared.net.guard import AddressGuard
    from shared.webhooks.endpoints import add_endpoint
    from shared.webhooks.secretbox import SecretBox

    guard = AddressGuard(settings.webhooks_allowed_networks, resolver)
    async with pool.acquire() as conn:
        return await add_endpoint(
            conn, settings, guard, SecretBox(settings), account_id=account_id, url=url, events=events
        )


async def emit(pool: Any, *, account_id: int, event_type: str = "order.status_changed", **data: Any) -> Any:
    """A subscriber event as the consumer hands it over; returns its id."""
    import uuid

    from shared.webhooks.ingest import ingest

    event_id = uuid.uuid4()
    payload = {"account_id": account_id, "order": 1, "status": "In progress", **data}
    await ingest(pool, event_id=event_id, event_type=event_type, payload=payload)
    return event_id


async def deliveries(pool: Any, endpoint_id: int) -> list[Any]:
    async with pool.acquire() as conn:
        return await conn.fetch("SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id", endpoint_id)


async def attempts(pool: Any, endpoint_id: int) -> list[Any]:
    async with pool.acquire() as conn:
        return await conn.fetch("SELECT * FROM webhook_attempts WHERE endpoint_id = $1 ORDER BY id", endpoint_id)
