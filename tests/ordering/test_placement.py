"""Placement semantics, one request at a time: replay, conflict, refusals, and what a placed order leaves."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import asyncpg
import pytest

from shared.db import accounts
from shared.db.pool import create_pool
from shared.domain.order_types import ServiceTerms
from shared.errors import AccountSuspended, DependencyDown, InsufficientBalance, RequestIdConflict
from shared.ordering.outcomes import existing_order
from shared.ordering.placement import Placer
from shared.settings import Settings
from tests.ordering.conftest import account_state, order_request
from tests.support.factories import make_account
from tests.support.processes import free_port


async def test_placed_order_writes_order_reservation_ledger_and_outbox(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms
) -> None:
    account_id = await make_account(pool, balance="100")
    req = order_request(terms, account_id=account_id, quantity=30, correlation_id="corr-1")

    order_id = await placer.place(req)

    async with pool.acquire() as conn:
        order = await conn.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
        ledger = await conn.fetch("SELECT kind, amount FROM ledger WHERE order_id = $1", order_id)
        events = await conn.fetch(
            "SELECT id, payload, correlation_id FROM outbox WHERE event_type = 'order.placed' "
            "AND payload->'order_ids' @> to_jsonb($1::bigint)",
            order_id,
        )
    assert order is not None
    assert (order["account_id"], order["request_id"], order["status"]) == (account_id, req.request_id, "pending")
    assert bytes(order["params_hash"]) == req.params_hash
    assert (order["service_id"], order["type"], order["link"]) == (terms.id, "Default", "https://example.test/p/1")
    assert (order["quantity"], order["charge"], order["rate"]) == (30, Decimal("30"), terms.rate)
    assert order["params"] == {"quantity": 30}
    assert (order["currency"], order["correlation_id"]) == ("USD", "corr-1")
    assert [(r["kind"], r["amount"]) for r in ledger] == [("reserve", Decimal("-30"))]
    assert len(events) == 1
    assert events[0]["payload"] == {"order_ids": [order_id]}
    assert events[0]["correlation_id"] == "corr-1"
    assert events[0]["id"].version == 4
    assert await account_state(pool, account_id) == (Decimal("70"), 1, 1, 1)


async def test_a_batch_writes_one_order_placed_event_naming_each_of_its_orders_once(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms
) -> None:
    accounts_ = [await make_account(pool, balance="100") for _ in range(4)]
    requests = [
        order_request(terms, account_id=accounts_[i % 4], quantity=10, correlation_id=f"c-{i}") for i in range(20)
    ]
    # Queued in one loop turn, before the batcher runs: one batch, one transaction, one event.
    ids = await asyncio.gather(*(placer.place(r) for r in requests))

    async with pool.acquire() as conn:
        events = await conn.fetch(
            "SELECT payload, correlation_id FROM outbox WHERE event_type = 'order.placed' AND EXISTS "
            "(SELECT 1 FROM jsonb_array_elements_text(payload->'order_ids') e(id) WHERE e.id::bigint = ANY($1))",
            ids,
        )
    assert len(events) == 1
    assert events[0]["payload"] == {"order_ids": sorted(ids)}
    # Many requests' orders: no single correlation id fits the event (the worker logs each order under its own).
    assert events[0]["correlation_id"] is None
    for account_id in accounts_:
        assert await account_state(pool, account_id) == (Decimal("50"), 5, 5, 5)


async def test_replay_returns_the_original_and_charges_once(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms
) -> None:
    account_id = await make_account(pool, balance="100")
    req = order_request(terms, account_id=account_id, quantity=10)

    first = await placer.place(req)
    again = await placer.place(req)
    # The same parameters spelled differently (padding, leading zeros) hash equal: still a replay.
    respelled = order_request(terms, account_id=account_id, request_id=req.request_id, quantity=" 010")

    assert again == first
    assert await placer.place(respelled) == first
    assert await account_state(pool, account_id) == (Decimal("90"), 1, 1, 1)


async def test_same_request_id_with_other_params_is_a_conflict(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms
) -> None:
    account_id = await make_account(pool, balance="100")
    first = order_request(terms, account_id=account_id, quantity=10)
    await placer.place(first)
    other = order_request(terms, account_id=account_id, request_id=first.request_id, quantity=11)

    with pytest.raises(RequestIdConflict):
        await placer.place(other)
    assert await account_state(pool, account_id) == (Decimal("90"), 1, 1, 1)


async def test_request_ids_are_scoped_to_the_account(pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms) -> None:
    one, two = await make_account(pool, balance="10"), await make_account(pool, balance="10")
    first = await placer.place(order_request(terms, account_id=one, request_id="shared-id", quantity=1))
    second = await placer.place(order_request(terms, account_id=two, request_id="shared-id", quantity=2))

    assert first != second
    assert (await account_state(pool, one))[:2] == (Decimal("9"), 1)
    assert (await account_state(pool, two))[:2] == (Decimal("8"), 1)


async def test_insufficient_balance_leaves_nothing_and_may_be_retried(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms
) -> None:
    account_id = await make_account(pool, balance="5")
    req = order_request(terms, account_id=account_id, quantity=6)

    with pytest.raises(InsufficientBalance):
        await placer.place(req)
    assert await account_state(pool, account_id) == (Decimal("5"), 0, 0, 0)

    async with pool.acquire() as conn:
        await accounts.topup(conn, account_id=account_id, amount=Decimal("1"))
        assert await existing_order(conn, account_id=account_id, request_id=req.request_id, params_hash=b"x") is None
    order_id = await placer.place(req)  # the failed request_id is free: the retry goes through
    assert await account_state(pool, account_id) == (Decimal("0"), 1, 1, 1)
    async with pool.acquire() as conn:
        assert await accounts.ledger_mismatches(conn) == []
        assert await conn.fetchval("SELECT request_id FROM orders WHERE id = $1", order_id) == req.request_id


async def test_an_order_costing_the_whole_balance_fits(pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms) -> None:
    account_id = await make_account(pool, balance="12.5")
    await placer.place(order_request(terms, account_id=account_id, quantity=12))
    req = order_request(terms, account_id=account_id, quantity=1)
    with pytest.raises(InsufficientBalance):
        await placer.place(req)
    assert await account_state(pool, account_id) == (Decimal("0.5"), 1, 1, 1)


async def test_suspended_account_is_refused(pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms) -> None:
    account_id = await make_account(pool, balance="100")
    async with pool.acquire() as conn:
        await accounts.set_status(conn, account_id=account_id, status="suspended")

    with pytest.raises(AccountSuspended):
        await placer.place(order_request(terms, account_id=account_id, quantity=1))
    assert await account_state(pool, account_id) == (Decimal("100"), 0, 0, 0)


async def test_existing_order_for_the_validation_failure_path(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms
) -> None:
    account_id = await make_account(pool, balance="100")
    req = order_request(terms, account_id=account_id, quantity=3)
    order_id = await placer.place(req)

    async with pool.acquire() as conn:
        found = await existing_order(
            conn, account_id=account_id, request_id=req.request_id, params_hash=req.params_hash
        )
        assert found == order_id
        with pytest.raises(RequestIdConflict):
            await existing_order(conn, account_id=account_id, request_id=req.request_id, params_hash=b"other")
        assert await existing_order(conn, account_id=account_id, request_id="never", params_hash=b"x") is None


async def test_database_unreachable_is_dependency_down_fast(settings: Settings, terms: ServiceTerms) -> None:
    closed = settings.model_copy(
        update={"database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere", "db_pool_min": 0}
    )
    pool = await create_pool(closed)
    placer = Placer(pool, closed)
    await placer.start()
    try:
        async with asyncio.timeout(5):
            with pytest.raises(DependencyDown):
                await placer.place(order_request(terms, account_id=1, quantity=1))
    finally:
        await placer.close()
        await pool.close()


async def test_close_places_what_is_queued_then_refuses(
    pool: asyncpg.Pool, settings: Settings, terms: ServiceTerms
) -> None:
    account_id = await make_account(pool, balance="100")
    placer = Placer(pool, settings)
    await placer.start()
    queued = [asyncio.create_task(placer.place(order_request(terms, account_id=account_id))) for _ in range(20)]
    await asyncio.sleep(0)  # every call is queued now
    await placer.close()

    assert all(task.done() for task in queued)
    assert len({task.result() for task in queued}) == 20
    with pytest.raises(DependencyDown):
        await placer.place(order_request(terms, account_id=account_id))
    assert await account_state(pool, account_id) == (Decimal("80"), 20, 20, 20)


async def test_a_kept_connection_that_died_while_idle_is_replaced(
    pool: asyncpg.Pool, settings: Settings, terms: ServiceTerms
) -> None:
    # A pool of its own, recognisable by application_name, so that only its connections are ended.
    name = f"placer_kill_{uuid.uuid4().hex[:8]}"
    own = settings.model_copy(update={"database_url": f"{settings.database_url}?application_name={name}"})
    own_pool = await create_pool(own)
    placer = Placer(own_pool, own)
    await placer.start()
    try:
        account_id = await make_account(pool, balance="100")
        await placer.place(order_request(terms, account_id=account_id))
        async with pool.acquire() as conn:
            # What a database restart does to the connections the placer keeps between batches.
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", name
            )
        assert killed >= 1

        order_id = await placer.place(order_request(terms, account_id=account_id))

        assert order_id > 0
        assert await account_state(pool, account_id) == (Decimal("98"), 2, 2, 2)
    finally:
        await placer.close()
        async with asyncio.timeout(10):  # every connection went back to the pool
            await own_pool.close()
