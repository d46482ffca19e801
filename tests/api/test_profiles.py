"""Key profiles (strict, classic) and the `Idempotency-Key` header, over HTTP against the real api."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from shared.auth.keys import generate_key
from shared.db import accounts, keys
from shared.domain.request_ids import BOTH_DIFFER, HEADER_INVALID, MISSING_REQUEST_ID
from shared.settings import Settings
from tests.api.conftest import ApiClient, balance_of, eventually, ledger_clean, wait_for_service
from tests.support.factories import make_account, make_key, make_service
from tests.support.processes import ApiProcess

LINK = "https://instagram.com/p/profiles"


@pytest.fixture(scope="module")
async def service(pool: asyncpg.Pool, client: ApiClient) -> int:
    service_id = await make_service(pool, rate="1.00", min_quantity=10, max_quantity=10_000)
    account_id = await make_account(pool)
    await wait_for_service(client, await make_key(pool, account_id=account_id), service_id)
    return service_id


async def customer(pool: asyncpg.Pool, profile: str, balance: str = "10") -> tuple[int, str]:
    account_id = await make_account(pool, balance=balance)
    return account_id, await make_key(pool, account_id=account_id, profile=profile)


async def order_count(pool: asyncpg.Pool, account_id: int) -> int:
    return await pool.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", account_id)


async def test_strict_add_without_request_id_says_how_to_send_one(
    client: ApiClient, pool: asyncpg.Pool, service: int
) -> None:
    account_id, key = await customer(pool, "strict")
    reply = await client.call(key, "add", service=service, link=LINK, quantity=100)
    assert (reply.status, reply.body) == (400, {"error": MISSING_REQUEST_ID})
    assert "Idempotency-Key" in MISSING_REQUEST_ID
    assert await order_count(pool, account_id) == 0
    assert await balance_of(pool, account_id) == Decimal("10")


async def test_classic_add_without_request_id_places_one_order_per_request(
    client: ApiClient, pool: asyncpg.Pool, service: int
) -> None:
    account_id, key = await customer(pool, "classic")
    first = await client.call(key, "add", service=service, link=LINK, quantity=100)
    again = await client.call(key, "add", service=service, link=LINK, quantity=100)
    assert first.status == again.status == 200
    assert first.body["order"] != again.body["order"]  # not idempotent, as on every classic panel
    assert await order_count(pool, account_id) == 2
    assert await balance_of(pool, account_id) == Decimal("9.80")
    # A request_id sent by a classic key is honoured as always.
    placed = await client.call(key, "add", service=service, link=LINK, quantity=100, request_id="c-1")
    replay = await client.call(key, "add", service=service, link=LINK, quantity=100, request_id="c-1")
    assert placed.body == replay.body
    assert await order_count(pool, account_id) == 3
    # The generated ids can never be sent by a client (they hold a space).
    generated = await pool.fetch("SELECT request_id FROM orders WHERE account_id = $1 ORDER BY id", account_id)
    assert [r["request_id"].startswith("classic ") for r in generated] == [True, True, False]
    assert await ledger_clean(pool)


async def test_classic_adds_at_once_are_each_placed_and_announced_exactly_once(
    client: ApiClient, pool: asyncpg.Pool, service: int
) -> None:
    """Many at once ride in the placer's group-commit batches: each request is one order, charged once, and
    named by exactly one `order.placed` outbox event."""
    account_id, key = await customer(pool, "classic", balance="100")
    replies = await asyncio.gather(
        *(client.call(key, "add", service=service, link=LINK, quantity=10) for _ in range(40))
    )
    assert {r.status for r in replies} == {200}
    order_ids = {r.body["order"] for r in replies}
    assert len(order_ids) == 40
    assert await order_count(pool, account_id) == 40
    assert await balance_of(pool, account_id) == Decimal("99.60")
    rows = await pool.fetch(
        "SELECT jsonb_array_elements(payload->'order_ids')::bigint AS id FROM outbox WHERE event_type = 'order.placed'"
    )
    announced = [r["id"] for r in rows if r["id"] in order_ids]
    assert sorted(announced) == sorted(order_ids)
    assert await ledger_clean(pool)


async def test_classic_errors_are_200_with_the_same_message(
    client: ApiClient, pool: asyncpg.Pool, service: int
) -> None:
    account_id, key = await customer(pool, "classic", balance="0.05")
    _, strict_key = await customer(pool, "strict", balance="0.05")
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("add", {"service": service, "link": LINK, "quantity": 100}, "Insufficient balance"),
        ("add", {"service": 999_999, "link": LINK, "quantity": 100}, "Service not found"),
        ("status", {"order": 999_999_999}, "Incorrect order ID"),
        ("nonsense", {}, "Invalid action"),
    ]
    for action, params, message in cases:
        classic = await client.call(key, action, **params)
        strict = await client.call(strict_key, action, **params, request_id="s-" + uuid.uuid4().hex)
        assert (classic.status, classic.body) == (200, {"error": message}), action
        assert classic.headers["X-Error-Status"] == "400"
        assert (strict.status, strict.body) == (400, {"error": message}), action
        assert "X-Error-Status" not in strict.headers
    # A 409 too: the same request_id with other parameters.
    _, rich = await customer(pool, "classic")
    assert (await client.call(rich, "add", service=service, link=LINK, quantity=10, request_id="x")).status == 200
    conflict = await client.call(rich, "add", service=service, link=LINK, quantity=20, request_id="x")
    assert (conflict.status, conflict.error) == (200, "request_id already used with different parameters")
    assert conflict.headers["X-Error-Status"] == "409"
    # A 403: the account is suspended.
    async with pool.acquire() as conn:
        await accounts.set_status(conn, account_id=account_id, status="suspended")

    async def suspended() -> bool:
        reply = await client.call(key, "balance")
        return reply.error == "Account suspended"

    await eventually(suspended)
    refused = await client.call(key, "balance")
    assert (refused.status, refused.headers["X-Error-Status"]) == (200, "403")
    assert "X-Error-Status" not in (await client.call(rich, "balance")).headers  # a success has none
    assert await order_count(pool, account_id) == 0


async def test_unknown_and_revoked_keys_stay_401(client: ApiClient, pool: asyncpg.Pool) -> None:
    """No key, no profile: an unknown key cannot be told from a revoked classic key, so both stay 401."""
    account_id = await make_account(pool)
    key = await make_key(pool, account_id=account_id, profile="classic")
    assert (await client.call(key, "balance")).status == 200
    async with pool.acquire() as conn:
        await keys.revoke_key(conn, prefix=key[:12])

    async def revoked() -> bool:
        return (await client.call(key, "balance")).status == 401

    await eventually(revoked)
    for reply in [
        await client.call(key, "balance"),
        await client.call(generate_key(), "balance"),
        await client.call(None, "balance"),
    ]:
        assert (reply.status, reply.body) == (401, {"error": "Invalid API key"})


async def test_profile_change_applies_at_once(client: ApiClient, pool: asyncpg.Pool, service: int) -> None:
    account_id, key = await customer(pool, "strict")
    assert (await client.call(key, "add", service=service, link=LINK, quantity=10)).status == 400
    async with pool.acquire() as conn:
        assert await keys.set_profile(conn, prefix=key[:12], profile="classic")

    async def classic() -> bool:
        reply = await client.call(key, "add", service=service, link=LINK, quantity=10)
        return reply.status == 200 and "order" in reply.body

    await eventually(classic)
    assert await order_count(pool, account_id) == 1


async def test_idempotency_key_header_is_the_request_id(client: ApiClient, pool: asyncpg.Pool, service: int) -> None:
    account_id, key = await customer(pool, "strict")
    params = {"service": service, "link": LINK, "quantity": 100}
    header = {"Idempotency-Key": "idem-" + uuid.uuid4().hex}
    first = await client.call_with_headers(header, key, "add", **params)
    again = await client.call_with_headers(header, key, "add", **params)
    assert first.status == again.status == 200
    assert first.body == again.body
    # The header and the parameter are one and the same id.
    same = await client.call_with_headers(header, key, "add", **params, request_id=header["Idempotency-Key"])
    as_param = await client.call(key, "add", **params, request_id=header["Idempotency-Key"])
    assert same.body == as_param.body == first.body
    other = await client.call_with_headers(header, key, "add", **{**params, "quantity": 200})
    assert other.status == 409
    differ = await client.call_with_headers(header, key, "add", **params, request_id="something-else")
    assert (differ.status, differ.body) == (400, {"error": BOTH_DIFFER})
    bad = await client.call_with_headers({"Idempotency-Key": "has space"}, key, "add", **params)
    assert (bad.status, bad.body) == (400, {"error": HEADER_INVALID})
    assert await order_count(pool, account_id) == 1
    assert await balance_of(pool, account_id) == Decimal("9.90000")


async def test_idempotency_key_makes_a_classic_add_idempotent(
    client: ApiClient, pool: asyncpg.Pool, service: int
) -> None:
    account_id, key = await customer(pool, "classic")
    header = {"Idempotency-Key": "idem-" + uuid.uuid4().hex}
    replies = await asyncio.gather(
        *(client.call_with_headers(header, key, "add", service=service, link=LINK, quantity=10) for _ in range(5))
    )
    assert len({r.body["order"] for r in replies}) == 1
    assert await order_count(pool, account_id) == 1


@pytest.fixture(scope="module")
async def limited(settings: Settings, logs_dir: Path, http: aiohttp.ClientSession) -> AsyncIterator[ApiClient]:
    process = await ApiProcess(
        settings, logs_dir / "api-profiles-limited.log", rate_limits_enabled=True, relay_enabled=False
    ).started()
    yield ApiClient(http, process.url)
    process.stop()


async def test_classic_429_keeps_its_status_and_retry_after(limited: ApiClient, pool: asyncpg.Pool) -> None:
    account_id = await make_account(pool)
    key = await make_key(pool, account_id=account_id, rate_limit_per_min=2, profile="classic")
    statuses = [(await limited.call(key, "balance")).status for _ in range(2)]
    assert statuses == [200, 200]
    denied = await limited.call(key, "balance")
    assert (denied.status, denied.body) == (429, {"error": "Rate limit exceeded"})
    assert 1 <= int(denied.headers["Retry-After"]) <= 60
    assert "X-Error-Status" not in denied.headers
