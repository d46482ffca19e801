"""The peer of `make bench` (bench/peer_app.py) keeps the guarantees a panel's `add` must: the order, its
charge and its ledger row in one transaction, exactly once per request_id, and its `order.placed` published —
otherwise the comparison would measure a peer that does less. Real Postgres and RabbitMQ, a real HTTP server."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer

from bench.peer_app import create_app
from shared.db import accounts
from shared.domain.events import OrderPlaced
from shared.settings import Settings
from tests.support.factories import make_customer, make_service
from tests.support.messaging import Observer, eventually
from tests.support.processes import free_port


@contextlib.asynccontextmanager
async def peer_app(settings: Settings) -> AsyncIterator[str]:
    """The peer on a port of its own (it loads the catalog at start: make the services first)."""
    async with TestServer(create_app(settings), host="127.0.0.1", port=free_port()) as server:
        yield str(server.make_url("/api/v2"))


async def post(url: str, **form: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.post(url, data=form) as resp:
        return resp.status, json.loads(await resp.read())


async def test_add_places_charges_and_publishes_once_per_request_id(settings: Settings, pool: asyncpg.Pool) -> None:
    service = await make_service(pool, rate="0.90")
    account_id, key = await make_customer(pool, balance="1.00")
    order = {"key": key, "action": "add", "service": str(service), "link": "https://x.test/p", "quantity": "100"}
    async with peer_app(settings) as peer, Observer(settings, binding="order.placed") as observer:
        status, first = await post(peer, **order, request_id="peer-1")
        assert status == 200
        status, again = await post(peer, **order, request_id="peer-1")
        assert (status, again) == (200, first)  # a replay: the same order, not a second charge
        status, conflict = await post(peer, **(order | {"quantity": "200"}), request_id="peer-1")
        assert status == 409, conflict
        status, refused = await post(peer, **(order | {"quantity": "2000"}), request_id="peer-2")
        assert (status, refused) == (400, {"error": "Insufficient balance"})
        await eventually(lambda: _has(observer, 1))
    order_id = first["order"]
    assert [OrderPlaced.from_payload(json.loads(m.body)).order_ids for m in observer.messages] == [(order_id,)]
    async with pool.acquire() as conn:
        balance = await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", account_id)
        ledger = await conn.fetch(
            "SELECT kind, amount, order_id FROM ledger WHERE account_id = $1 ORDER BY id", account_id
        )
        charge = await conn.fetchval("SELECT charge FROM orders WHERE id = $1", order_id)
        mismatches = [m for m in await accounts.ledger_mismatches(conn) if m.account_id == account_id]
    assert charge == Decimal("0.09")
    assert balance == Decimal("0.91")
    assert [(r["kind"], r["amount"], r["order_id"]) for r in ledger][1:] == [("reserve", -charge, order_id)]
    assert mismatches == []


async def _has(observer: Observer, n: int) -> bool:
    return len(observer.messages) >= n
