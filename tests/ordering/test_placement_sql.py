"""The batch statement itself: greedy running sums, outcomes, and the fallback when a batch fails."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from shared.db import placement as sql
from shared.domain.events import OrderPlaced
from shared.domain.order_types import ServiceTerms
from shared.errors import ServiceNotFound
from shared.ordering.outcomes import _new_order
from shared.ordering.placement import Placer
from tests.ordering.conftest import account_state, order_request
from tests.support.factories import make_account


async def test_running_sum_is_greedy_and_reports_what_is_left(pool: asyncpg.Pool, terms: ServiceTerms) -> None:
    account_id = await make_account(pool, balance="10")
    orders = [_new_order(order_request(terms, account_id=account_id, quantity=q)) for q in (8, 5, 1)]

    async with pool.acquire() as conn:
        rows = await sql.place_batch(conn, orders)

    assert [r.outcome for r in rows] == [sql.Outcome.PLACED, sql.Outcome.REFUSED, sql.Outcome.REFUSED]
    assert [r.balance_left for r in rows] == [Decimal("2")] * 3
    assert await account_state(pool, account_id) == (Decimal("2"), 1, 1, 1)


async def test_outcomes_of_a_mixed_batch(pool: asyncpg.Pool, terms: ServiceTerms) -> None:
    active, suspended = await make_account(pool, balance="10"), await make_account(pool, balance="10")
    async with pool.acquire() as conn:
        await conn.execute("UPDATE accounts SET status = 'suspended' WHERE id = $1", suspended)
        placed_before = await sql.place_batch(conn, [_new_order(order_request(terms, account_id=active, quantity=1))])
        earlier = placed_before[0].order_id
        first_request_id = await conn.fetchval("SELECT request_id FROM orders WHERE id = $1", earlier)
        replay = order_request(terms, account_id=active, request_id=first_request_id, quantity=1)
        batch = [
            order_request(terms, account_id=active, quantity=2),
            replay,
            order_request(terms, account_id=suspended, quantity=1),
            order_request(terms, account_id=987_654_321, quantity=1),
        ]
        rows = await sql.place_batch(conn, [_new_order(r) for r in batch])

    assert [r.outcome for r in rows] == [
        sql.Outcome.PLACED,
        sql.Outcome.EXISTING,
        sql.Outcome.SUSPENDED,
        sql.Outcome.SUSPENDED,
    ]
    assert rows[1].order_id == earlier
    assert rows[1].params_hash == replay.params_hash
    assert await account_state(pool, active) == (Decimal("7"), 2, 2, 2)
    assert await account_state(pool, suspended) == (Decimal("10"), 0, 0, 0)


async def test_a_failing_batch_falls_back_to_one_by_one(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms
) -> None:
    import asyncio
    import dataclasses

    account_id = await make_account(pool, balance="100")
    good = [order_request(terms, account_id=account_id, quantity=1) for _ in range(5)]
    bad = order_request(terms, account_id=account_id, quantity=1)
    # A service deleted after validation: the foreign key fails the statement of the whole batch.
    bad = dataclasses.replace(bad, draft=dataclasses.replace(bad.draft, service_id=987_654_321))

    results = await asyncio.gather(*(placer.place(r) for r in [*good[:2], bad, *good[2:]]), return_exceptions=True)

    assert all(isinstance(r, int) for r in results[:2] + results[3:])
    assert isinstance(results[2], ServiceNotFound)
    assert await account_state(pool, account_id) == (Decimal("95"), 5, 5, 5)


async def test_duplicates_in_one_statement_share_one_order(pool: asyncpg.Pool, terms: ServiceTerms) -> None:
    # ON CONFLICT skips the second copy; both report the one order, charged once. (The Placer dedupes anyway,
    # so that the running sum counts each order once.)
    account_id = await make_account(pool, balance="10")
    req = _new_order(order_request(terms, account_id=account_id, request_id="twice", quantity=1))
    async with pool.acquire() as conn:
        rows = await sql.place_batch(conn, [req, req])
    assert [r.outcome for r in rows] == [sql.Outcome.PLACED, sql.Outcome.PLACED]
    assert rows[0].order_id == rows[1].order_id
    assert await account_state(pool, account_id) == (Decimal("9"), 1, 1, 1)


async def test_the_order_placed_event_the_statement_writes_decodes_into_its_contract(
    pool: asyncpg.Pool, terms: ServiceTerms
) -> None:
    """Pins the `order.placed` payload built in SQL (`jsonb_build_object` in PLACE_BATCH) to `OrderPlaced`."""
    first, second = await make_account(pool, balance="10"), await make_account(pool, balance="10")
    batch = [order_request(terms, account_id=a, quantity=1) for a in (first, second, first)]
    async with pool.acquire() as conn:
        rows = await sql.place_batch(conn, [_new_order(r) for r in batch])
        placed = sorted(r.order_id for r in rows if r.order_id is not None)
        written = await conn.fetch(
            "SELECT event_type, payload FROM outbox WHERE payload->'order_ids' @> to_jsonb($1::bigint[])", placed
        )

    assert [r.outcome for r in rows] == [sql.Outcome.PLACED] * 3
    assert len(written) == 1  # one event for the whole batch
    assert written[0]["event_type"] == OrderPlaced.TYPE
    assert OrderPlaced.from_payload(written[0]["payload"]) == OrderPlaced(tuple(placed))
