"""`add` over HTTP under concurrency, against the real api process: retries all at once, overdraw attempts."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import asyncpg
import pytest

from shared.db.accounts import ledger_mismatches
from tests.ordering.conftest import account_state
from tests.support.factories import make_customer, make_service
from tests.support.processes import ApiProcess


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


async def _add(session: aiohttp.ClientSession, api: ApiProcess, form: dict[str, str]) -> tuple[int, str]:
    async with session.post(api.url + "/api/v2", data=form) as resp:
        return resp.status, await resp.text()


async def test_twenty_concurrent_retries_of_each_of_100_request_ids(
    api: ApiProcess, pool: asyncpg.Pool, session: aiohttp.ClientSession
) -> None:
    service_id = await make_service(pool, rate="1000", min_quantity=1, max_quantity=1000)
    account_id, key = await make_customer(pool, balance="1000")
    prefix = uuid.uuid4().hex[:8]
    forms = [
        {"key": key, "action": "add", "service": str(service_id), "link": f"https://example.test/p/{n}",
         "quantity": "2", "request_id": f"{prefix}-{n}"}
        for n in range(100)
    ]  # fmt: skip
    calls = [form for form in forms for _ in range(20)]

    replies = await asyncio.gather(*(_add(session, api, form) for form in calls))

    bodies: dict[str, set[str]] = {}
    for form, (status, body) in zip(calls, replies, strict=True):
        assert status == 200, body
        bodies.setdefault(form["request_id"], set()).add(body)
    assert all(len(seen) == 1 for seen in bodies.values())  # byte-identical answers to every retry
    order_ids = {json.loads(next(iter(seen)))["order"] for seen in bodies.values()}
    assert len(order_ids) == 100
    assert await account_state(pool, account_id) == (Decimal("800"), 100, 100, 100)
    async with pool.acquire() as conn:
        assert await ledger_mismatches(conn) == []
        owned = await conn.fetchval(
            "SELECT count(*) FROM orders WHERE account_id = $1 AND id = ANY ($2::bigint[])", account_id, order_ids
        )
    assert owned == 100


async def test_1000_concurrent_orders_against_a_balance_for_100(
    api: ApiProcess, pool: asyncpg.Pool, session: aiohttp.ClientSession
) -> None:
    service_id = await make_service(pool, rate="1000", min_quantity=1, max_quantity=1000)
    account_id, key = await make_customer(pool, balance="100")
    prefix = uuid.uuid4().hex[:8]
    forms = [
        {"key": key, "action": "add", "service": str(service_id), "link": "https://example.test/p/1",
         "quantity": "1", "request_id": f"{prefix}-{n}"}
        for n in range(1000)
    ]  # fmt: skip

    replies = await asyncio.gather(*(_add(session, api, form) for form in forms))

    accepted = [json.loads(body)["order"] for status, body in replies if status == 200]
    refused = [(status, json.loads(body)) for status, body in replies if status != 200]
    assert len(accepted) == len(set(accepted)) == 100
    assert len(refused) == 900
    assert all(reply == (400, {"error": "Insufficient balance"}) for reply in refused)
    assert await account_state(pool, account_id) == (Decimal("0"), 100, 100, 100)
    async with pool.acquire() as conn:
        assert await ledger_mismatches(conn) == []
