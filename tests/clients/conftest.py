"""Helpers for the client kit's tests: a service on sale at the session's real api, customers with a key of
either profile, and `Front`, a real HTTP server in front of the api that can lose answers or refuse calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tests.api.conftest import ApiClient, client, http, wait_for_service
from tests.support.factories import make_account, make_key, make_service
from tests.support.processes import ApiProcess

__all__ = ["client", "http"]  # the api tests' session fixtures, used here too


@dataclass
class Customer:
    account_id: int
    key: str


async def new_customer(pool: asyncpg.Pool, *, profile: str = "strict", balance: str = "10") -> Customer:
    account_id = await make_account(pool, balance=balance)
    return Customer(account_id, await make_key(pool, account_id=account_id, profile=profile))


@pytest.fixture(scope="module")
async def service(pool: asyncpg.Pool, client: ApiClient) -> int:
    """A Default service at 1.00 per 1000 (10..10000), refill and cancel allowed."""
    service_id = await make_service(pool, rate="1.00", min_quantity=10, max_quantity=10_000)
    await wait_for_service(client, (await new_customer(pool)).key, service_id)
    return service_id


@dataclass(frozen=True)
class Wire:
    user_agent: str
    content_type: str
    body: bytes


@dataclass
class Front:
    """Forwards every request to the api, unless `plan` says otherwise for the next ones:
    "lose" forwards it and then cuts the connection without answering (the order is placed, the answer lost),
    "429:<s>" answers 429 with Retry-After <s>, "503" answers 503, "classic503" answers 200 with X-Error-Status
    503 (a classic key's 503); none of them forwards."""

    target: str
    session: aiohttp.ClientSession
    url: str = ""
    plan: list[str] = field(default_factory=list)
    forwarded: list[dict[str, str]] = field(default_factory=list)  # the forms that reached the api
    wire: list[Wire] = field(default_factory=list)  # the same requests as they came: headers and raw body
    received: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received += 1
        step = self.plan.pop(0) if self.plan else "forward"
        if step.startswith("429:"):
            return web.json_response(
                {"error": "Rate limit exceeded"}, status=429, headers={"Retry-After": step.split(":")[1]}
            )
        if step == "503":
            return web.json_response({"error": "Service temporarily unavailable"}, status=503)
        if step == "classic503":  # how the api answers a classic key's 503
            return web.json_response({"error": "Service temporarily unavailable"}, headers={"X-Error-Status": "503"})
        body = await request.read()
        self.wire.append(Wire(request.headers.get("User-Agent", ""), request.headers.get("Content-Type", ""), body))
        self.forwarded.append({k: str(v) for k, v in (await request.post()).items()})
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}}
        async with self.session.post(self.target, data=body, headers=headers) as upstream:
            payload = await upstream.read()
            status = upstream.status
            forward = {k: v for k, v in upstream.headers.items() if k.lower() in {"content-type", "retry-after"}}
        if step == "lose":
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(0)
        return web.Response(status=status, body=payload, headers=forward)


@pytest.fixture
async def front(api: ApiProcess, http: aiohttp.ClientSession) -> AsyncIterator[Front]:
    proxy = Front(target=api.url + "/api/v2", session=http)
    app = web.Application()
    app.router.add_post("/api/v2", proxy.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    proxy.url = f"http://127.0.0.1:{port}/api/v2"
    yield proxy
    await runner.cleanup()
