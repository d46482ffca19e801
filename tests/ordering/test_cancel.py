"""One money path: the api's cancel of an order that never reached an upstream refunds through the worker's
settlement (`shared.ordering.settlement` → `shared.db.accounts.pay_refunds`), so whatever else tries to refund
the same order afterwards or at the same moment pays nothing twice."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest

from shared.db.accounts import RefundAlreadyPaid, ledger_mismatches
from shared.db.orders.locks import lock_account_order, lock_orders
from shared.domain.lifecycle import OrderView
from shared.domain.order_types import ServiceTerms
from shared.domain.statuses import OrderState
from shared.ordering.cancel import cancel_unsent
from shared.ordering.placement import Placer
from shared.ordering.settlement import Settlement
from tests.ordering.conftest import order_request
from tests.support.factories import make_account


async def placed(pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms, *, quantity: int) -> tuple[int, OrderView]:
    """An account of balance 10 with one pending order of charge `quantity`, and that order as read then."""
    account_id = await make_account(pool, balance="10")
    order_id = await placer.place(order_request(terms, account_id=account_id, quantity=quantity))
    async with pool.acquire() as conn, conn.transaction():
        [locked] = await lock_orders(conn, [order_id])
    return account_id, locked.view


async def money(
    pool: asyncpg.Pool, account_id: int, order_id: int
) -> tuple[Decimal, Decimal, list[tuple[Decimal, str]]]:
    """(balance, orders.refunded, the order's refund ledger rows as (amount, memo)); the ledger must add up."""
    async with pool.acquire() as conn:
        assert await ledger_mismatches(conn) == []
        balance = await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", account_id)
        refunded = await conn.fetchval("SELECT refunded FROM orders WHERE id = $1", order_id)
        rows = await conn.fetch(
            "SELECT amount, memo FROM ledger WHERE order_id = $1 AND kind = 'refund' ORDER BY id", order_id
        )
    return balance, refunded, [(r["amount"], r["memo"]) for r in rows]


async def test_the_api_cancel_refunds_once_and_a_later_worker_settlement_pays_nothing(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms
) -> None:
    account_id, before = await placed(pool, placer, terms, quantity=4)
    async with pool.acquire() as conn, conn.transaction():
        locked = await lock_account_order(conn, account_id=account_id, order_id=before.id)
        assert locked is not None
        assert locked.never_sent
        await cancel_unsent(conn, locked.view, correlation_id="cancel-1")
    one_refund = (Decimal("10"), Decimal("4"), [(Decimal("4"), "canceled before submission")])
    assert await money(pool, account_id, before.id) == one_refund
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, remains FROM orders WHERE id = $1", before.id)
        assert row is not None
        events = await conn.fetch(
            "SELECT event_type, correlation_id FROM outbox WHERE (payload->>'order')::bigint = $1 ORDER BY event_type",
            before.id,
        )
    assert (row["status"], row["remains"]) == ("canceled", 4)
    assert [(e["event_type"], e["correlation_id"]) for e in events] == [
        ("order.canceled", "cancel-1"),
        ("order.status_changed", "cancel-1"),
    ]

    # A worker that read the order before the cancel settles it as canceled too (a refusal upstream, say).
    late = Settlement()
    late.order_moved(before, state=OrderState.CANCELED, start_count=None, remains=4, memo="refused upstream")
    with pytest.raises(RefundAlreadyPaid):
        async with pool.acquire() as conn, conn.transaction():
            await late.write(conn)
    assert await money(pool, account_id, before.id) == one_refund


async def test_two_settlements_of_one_cancel_at_the_same_moment_pay_once(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms
) -> None:
    """Both read the order as pending; the second waits for the first's locks, then finds the refund paid."""
    account_id, view = await placed(pool, placer, terms, quantity=3)
    async with pool.acquire() as first, pool.acquire() as second:
        transaction = first.transaction()
        await transaction.start()
        try:
            await cancel_unsent(first, view, correlation_id=None)

            async def racer() -> None:
                async with second.transaction():
                    await cancel_unsent(second, view, correlation_id=None)

            racing = asyncio.create_task(racer())
            await _wait_until_blocked_by(pool, first.get_server_pid())
        finally:
            await transaction.commit()
        with pytest.raises(RefundAlreadyPaid):
            await racing
    assert await money(pool, account_id, view.id) == (
        Decimal("10"),
        Decimal("3"),
        [(Decimal("3"), "canceled before submission")],
    )


async def _wait_until_blocked_by(pool: asyncpg.Pool, blocker_pid: int) -> None:
    async with pool.acquire() as conn:
        for _ in range(500):
            if await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))", blocker_pid
            ):
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the second settlement never waited for the first one's locks")
