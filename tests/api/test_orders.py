"""`services`, `balance`, `add` and `status` over HTTP: success shapes, idempotency and every 400 of the contract."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg
import pytest

from shared.db import catalog
from shared.domain.order_types import ORDER_TYPES
from shared.domain.request_ids import MISSING_REQUEST_ID
from tests.api.conftest import ApiClient, balance_of, eventually, ledger_clean, wait_for_service
from tests.domain.test_order_types import VALID
from tests.support.factories import make_customer, make_service

LINK = "https://instagram.com/p/abc"
RANGE = "Quantity must be between 50 and 10000"
BAD_LINK = "Parameter link must be an http(s) URL"
BAD_RID = "request_id must be 1 to 128 printable ASCII characters"


def rid() -> str:
    return "r-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
async def default_service(pool: asyncpg.Pool, client: ApiClient) -> int:
    service_id = await make_service(pool, rate="0.90", min_quantity=50, max_quantity=10_000)
    _, key = await make_customer(pool)
    await wait_for_service(client, key, service_id)
    return service_id


@pytest.fixture(scope="module")
async def typed_services(pool: asyncpg.Pool, client: ApiClient) -> dict[str, int]:
    """One service per order type, with the terms the domain table was written for (rate 1.00, 10..1000)."""
    ids = {
        t: await make_service(pool, type=t, rate="1.00", min_quantity=10, max_quantity=1000, dripfeed=True)
        for t in ORDER_TYPES
    }
    _, key = await make_customer(pool)
    await wait_for_service(client, key, *ids.values())
    return ids


async def test_services_lists_the_catalog(client: ApiClient, pool: asyncpg.Pool, default_service: int) -> None:
    _, key = await make_customer(pool)
    reply = await client.call(key, "services")
    assert reply.status == 200
    entry = next(s for s in reply.body if s["service"] == default_service)
    assert entry == {
        "service": default_service,
        "name": entry["name"],
        "type": "Default",
        "category": "Tests",
        "rate": "0.90",
        "min": "50",
        "max": "10000",
        "refill": True,
        "cancel": True,
        "dripfeed": True,
    }


async def test_balance_shape(client: ApiClient, pool: asyncpg.Pool) -> None:
    _, key = await make_customer(pool, balance="100.84292")
    reply = await client.call(key, "balance")
    assert (reply.status, reply.body) == (200, {"balance": "100.84292", "currency": "USD"})


async def test_add_places_once_and_status_reports_it(
    client: ApiClient, pool: asyncpg.Pool, default_service: int
) -> None:
    account_id, key = await make_customer(pool, balance="10")
    request_id = rid()
    params = {"service": default_service, "link": LINK, "quantity": 1000, "request_id": request_id}
    first = await client.call(key, "add", **params)
    assert first.status == 200
    order_id = first.body["order"]
    assert isinstance(order_id, int)
    again = await client.call(key, "add", **params)
    assert (again.status, again.body) == (200, {"order": order_id})
    assert await balance_of(pool, account_id) == Decimal("9.10")  # charged once: 0.90 x 1000 / 1000
    status = await client.call(key, "status", order=order_id)
    assert (status.status, status.body) == (
        200,
        {"charge": "0.90", "start_count": "0", "status": "Pending", "remains": "1000", "currency": "USD"},
    )
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT correlation_id, quantity FROM orders WHERE id = $1", order_id)
        assert row is not None
        events = await conn.fetchval(
            "SELECT count(*) FROM outbox"
            " WHERE event_type = 'order.placed' AND payload->'order_ids' @> to_jsonb($1::bigint)",
            order_id,
        )
    assert row["quantity"] == 1000
    assert row["correlation_id"] == first.headers["X-Request-ID"]
    assert events == 1
    assert await ledger_clean(pool)


async def test_add_with_different_parameters_is_409(
    client: ApiClient, pool: asyncpg.Pool, default_service: int
) -> None:
    _, key = await make_customer(pool)
    request_id = rid()
    params = {"service": default_service, "link": LINK, "quantity": 100, "request_id": request_id}
    assert (await client.call(key, "add", **params)).status == 200
    reply = await client.call(key, "add", **{**params, "quantity": 101})
    assert (reply.status, reply.body) == (409, {"error": "request_id already used with different parameters"})


async def test_retry_after_the_service_changed_returns_the_original(client: ApiClient, pool: asyncpg.Pool) -> None:
    service_id = await make_service(pool, min_quantity=10, max_quantity=1000)
    _, key = await make_customer(pool)
    await wait_for_service(client, key, service_id)
    params = {"service": service_id, "link": LINK, "quantity": 500, "request_id": rid()}
    order_id = (await client.call(key, "add", **params)).body["order"]
    async with pool.acquire() as conn:
        await conn.execute("UPDATE services SET max_quantity = 100 WHERE id = $1", service_id)
        await catalog.notify_catalog_changed(conn)

    async def limit_applied() -> bool:
        reply = await client.call(key, "add", **{**params, "request_id": rid()})
        return reply.error == "Quantity must be between 10 and 100"

    await eventually(limit_applied)
    assert (await client.call(key, "add", **params)).body == {"order": order_id}
    changed = await client.call(key, "add", **{**params, "link": LINK + "x"})
    assert changed.status == 409


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"link": LINK, "quantity": "100", "request_id": "x1"}, "Missing required parameter: service"),
        ({"service": "{svc}", "link": LINK, "quantity": "100"}, MISSING_REQUEST_ID),
        ({"service": "{svc}", "quantity": "100", "request_id": "x2"}, "Missing required parameter: link"),
        ({"service": "{svc}", "link": LINK, "request_id": "x3"}, "Missing required parameter: quantity"),
        ({"service": "999999", "link": LINK, "quantity": "100", "request_id": "x4"}, "Service not found"),
        ({"service": "abc", "link": LINK, "quantity": "100", "request_id": "x5"}, "Service not found"),
        ({"service": "{svc}", "link": LINK, "quantity": "10", "request_id": "x6"}, RANGE),
        ({"service": "{svc}", "link": LINK, "quantity": "10001", "request_id": "x7"}, RANGE),
        ({"service": "{svc}", "link": "ftp://a/b", "quantity": "100", "request_id": "x8"}, BAD_LINK),
        ({"service": "{svc}", "link": LINK, "quantity": "100", "request_id": "has space"}, BAD_RID),
    ],
)  # fmt: skip
async def test_add_validation_errors_create_nothing(
    client: ApiClient, pool: asyncpg.Pool, default_service: int, params: dict[str, str], message: str
) -> None:
    account_id, key = await make_customer(pool, balance="50")
    params = {k: v.replace("{svc}", str(default_service)) for k, v in params.items()}
    reply = await client.call(key, "add", **params)
    assert (reply.status, reply.body) == (400, {"error": message})
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", account_id) == 0
    assert await balance_of(pool, account_id) == Decimal("50")


async def test_insufficient_balance_is_400_and_leaves_nothing(
    client: ApiClient, pool: asyncpg.Pool, default_service: int
) -> None:
    account_id, key = await make_customer(pool, balance="0.50")
    reply = await client.call(key, "add", service=default_service, link=LINK, quantity=1000, request_id=rid())
    assert (reply.status, reply.body) == (400, {"error": "Insufficient balance"})
    assert await balance_of(pool, account_id) == Decimal("0.50")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", account_id) == 0


async def test_invalid_and_missing_action(client: ApiClient, pool: asyncpg.Pool) -> None:
    _, key = await make_customer(pool)
    assert (await client.call(key, "fly")).body == {"error": "Invalid action"}
    reply = await client.request(data={"key": key})
    assert (reply.status, reply.body) == (400, {"error": "Missing required parameter: action"})


@pytest.mark.parametrize("order_type", sorted(VALID))
async def test_every_order_type_is_validated_and_charged(
    client: ApiClient, pool: asyncpg.Pool, typed_services: dict[str, int], order_type: str
) -> None:
    params, units, charge = VALID[order_type]
    account_id, key = await make_customer(pool, balance="10")
    service_id = typed_services[order_type]
    reply = await client.call(key, "add", service=service_id, request_id=rid(), **params)
    assert reply.status == 200, reply.body
    order_id = reply.body["order"]
    status = await client.call(key, "status", order=order_id)
    assert Decimal(status.body["charge"]) == Decimal(charge)
    assert await balance_of(pool, account_id) == Decimal(10) - Decimal(charge)
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT type, quantity, charge FROM orders WHERE id = $1", order_id)
        assert row is not None
    assert (row["type"], row["quantity"], row["charge"]) == (order_type, units, Decimal(charge))
    # Every required parameter is required through HTTP too.
    required = next(name for name in params if name not in {"old_posts", "expiry"})
    reduced = {k: v for k, v in params.items() if k != required}
    missing = await client.call(key, "add", service=service_id, request_id=rid(), **reduced)
    assert (missing.status, missing.body) == (400, {"error": f"Missing required parameter: {required}"})


async def test_dripfeed_charges_quantity_times_runs(
    client: ApiClient, pool: asyncpg.Pool, typed_services: dict[str, int]
) -> None:
    _, key = await make_customer(pool)
    reply = await client.call(
        key, "add", service=typed_services["Default"], link=LINK, quantity=100, runs=5, interval=30, request_id=rid()
    )
    status = await client.call(key, "status", order=reply.body["order"])
    assert status.body["charge"] == "0.50"


async def test_status_batch_with_per_id_errors(client: ApiClient, pool: asyncpg.Pool, default_service: int) -> None:
    _, key = await make_customer(pool)
    _, other_key = await make_customer(pool)
    mine = (await client.call(key, "add", service=default_service, link=LINK, quantity=100, request_id=rid())).body
    theirs = (
        await client.call(other_key, "add", service=default_service, link=LINK, quantity=100, request_id=rid())
    ).body
    reply = await client.call(key, "status", orders=f"{mine['order']},{theirs['order']},abc,999999999")
    assert reply.status == 200
    assert reply.body == {
        str(mine["order"]): {
            "charge": "0.09", "start_count": "0", "status": "Pending", "remains": "100", "currency": "USD",
        },
        str(theirs["order"]): {"error": "Incorrect order ID"},  # another account's order looks absent
        "abc": {"error": "Incorrect order ID"},
        "999999999": {"error": "Incorrect order ID"},
    }  # fmt: skip


async def test_status_errors(client: ApiClient, pool: asyncpg.Pool) -> None:
    _, key = await make_customer(pool)
    assert (await client.call(key, "status", order=123456789)).body == {"error": "Incorrect order ID"}
    assert (await client.call(key, "status")).body == {"error": "Missing required parameter: order"}
    too_many = ",".join(str(i) for i in range(1, 102))
    reply = await client.call(key, "status", orders=too_many)
    assert (reply.status, reply.body) == (400, {"error": "Parameter orders must list at most 100 ids"})


async def test_status_reports_charge_after_refunds(client: ApiClient, pool: asyncpg.Pool, default_service: int) -> None:
    _, key = await make_customer(pool)
    order_id = (
        await client.call(key, "add", service=default_service, link=LINK, quantity=1000, request_id=rid())
    ).body["order"]
    async with pool.acquire() as conn:  # what the worker does for a Partial with 250 of 1000 left
        await conn.execute(
            "UPDATE orders SET status = 'partial', refunded = 0.225, remains = 250, start_count = 3572 WHERE id = $1",
            order_id,
        )
    reply = await client.call(key, "status", order=order_id)
    assert reply.body == {
        "charge": "0.675", "start_count": "3572", "status": "Partial", "remains": "250", "currency": "USD",
    }  # fmt: skip


async def test_an_order_that_would_cost_nothing_is_refused_even_at_zero_balance(
    client: ApiClient, pool: asyncpg.Pool
) -> None:
    cheap = await make_service(pool, rate="0.001", min_quantity=1, max_quantity=10_000)
    account_id, key = await make_customer(pool, balance="0")
    await wait_for_service(client, key, cheap)
    reply = await client.call(key, "add", service=cheap, link=LINK, quantity=4, request_id=rid())  # 0.000004
    assert (reply.status, reply.body) == (
        400,
        {"error": "Quantity too small: the charge would be below 0.00001 (at least 5 units at this rate)"},
    )
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", account_id) == 0
    # The smallest payable order costs one smallest unit: at zero balance that is Insufficient balance, not free.
    reply = await client.call(key, "add", service=cheap, link=LINK, quantity=5, request_id=rid())
    assert (reply.status, reply.body) == (400, {"error": "Insufficient balance"})
    funded_id, funded = await make_customer(pool, balance="0.00001")
    reply = await client.call(funded, "add", service=cheap, link=LINK, quantity=5, request_id=rid())
    assert reply.status == 200, reply
    assert await balance_of(pool, funded_id) == Decimal("0")
    assert await balance_of(pool, account_id) == Decimal("0")
    assert await ledger_clean(pool)
