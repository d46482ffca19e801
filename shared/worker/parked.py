"""Operator resolution of parked orders ('unknown': the upstream may have them), on the operator's word only.

- attach the upstream order id the operator found → the order is bought: 'in_progress', polled from now on;
- refund → 'canceled' with the whole charge back (the operator made sure the upstream has no such order);
- resubmit → 'pending' again; the worker's sweeper submits it (the operator made sure the upstream has none).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.db.orders import reads
from shared.db.orders import submission as sql
from shared.db.orders.locks import LockedOrder, lock_orders
from shared.db.types import Conn
from shared.domain.statuses import OrderState
from shared.errors import NotEligible
from shared.observability import metrics
from shared.ordering.cancel import cancel_refunding_all
from shared.ordering.settlement import Settlement
from shared.settings import Settings
from shared.worker.submission import poll_schedule
from shared.worker.tx import in_transaction


@dataclass(frozen=True)
class Resolution:
    order_id: int
    action: str
    status: OrderState


async def _lock_parked(conn: Conn, order_id: int) -> LockedOrder:
    locked = await lock_orders(conn, [order_id])
    if not locked:
        raise NotEligible(f"Order {order_id} not found")
    if locked[0].view.state is not OrderState.UNKNOWN:
        raise NotEligible(f"Order {order_id} is not parked (status {locked[0].view.state})")
    return locked[0]


async def attach_provider_order(
    pool: asyncpg.Pool, settings: Settings, *, order_id: int, provider_order_id: str
) -> Resolution:
    async def work(conn: Conn) -> Resolution:
        locked = await _lock_parked(conn, order_id)
        provider_id = await reads.service_provider(conn, order_id=order_id)
        if provider_id is None:
            raise NotEligible(f"Order {order_id}'s service has no upstream provider")
        purchase = sql.Purchase(order_id, provider_id, provider_order_id, poll_schedule(settings).delay(0))
        settlement = Settlement()
        settlement.bought(await sql.mark_accepted(conn, [purchase]))
        settlement.order_moved(
            locked.view,
            state=OrderState.IN_PROGRESS,
            start_count=locked.view.start_count,
            remains=locked.view.remains,
            correlation_id=locked.correlation_id,
        )
        await settlement.write(conn)
        return Resolution(order_id, "provider-order", OrderState.IN_PROGRESS)

    return await in_transaction(pool, work)


async def refund(pool: asyncpg.Pool, *, order_id: int) -> Resolution:
    async def work(conn: Conn) -> Resolution:
        locked = await _lock_parked(conn, order_id)
        view = locked.view
        memo = "parked order refunded by an operator"
        paid = await cancel_refunding_all(conn, view, memo=memo, error=memo, correlation_id=locked.correlation_id)
        metrics.REFUNDS.inc(paid)
        return Resolution(order_id, "refund", OrderState.CANCELED)

    return await in_transaction(pool, work)


async def resubmit(pool: asyncpg.Pool, *, order_id: int) -> Resolution:
    async def work(conn: Conn) -> Resolution:
        await _lock_parked(conn, order_id)
        await sql.mark_resubmit(conn, order_id=order_id, note="resubmitted by an operator")
        return Resolution(order_id, "resubmit", OrderState.PENDING)

    return await in_transaction(pool, work)
