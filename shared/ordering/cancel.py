"""Cancel with the whole charge refunded: an order that provably never reached an upstream (the api's `cancel` of
such a pending order) and a parked order an operator refunds (`panelflow orders refund`)."""

from __future__ import annotations

from shared.db.orders import cancels as sql
from shared.db.types import Conn
from shared.domain.lifecycle import OrderView
from shared.domain.statuses import OrderState
from shared.ordering.settlement import Settlement


async def cancel_unsent(conn: Conn, order: OrderView, *, correlation_id: str | None) -> None:
    """The api's cancel of a pending order that provably never reached an upstream (see `cancel_refunding_all`)."""
    await cancel_refunding_all(
        conn, order, memo="canceled before submission", error=None, correlation_id=correlation_id
    )


async def cancel_refunding_all(
    conn: Conn, order: OrderView, *, memo: str, error: str | None, correlation_id: str | None
) -> int:
    """'canceled', nothing delivered, the whole charge refunded, `order.status_changed` + `order.canceled`:
    through the settlement path the worker uses, inside the caller's transaction with the order locked
    (`shared.db.orders.locks`). A refund already paid raises `RefundAlreadyPaid` and the transaction rolls back.
    Returns the number of refunds paid (0 or 1). `error` None keeps the order's last error."""
    await sql.finish_canceled(conn, order_id=order.id, error=error)
    settlement = Settlement()
    settlement.order_moved(
        order,
        state=OrderState.CANCELED,
        start_count=order.start_count,
        remains=order.quantity,
        memo=memo,
        correlation_id=correlation_id,
    )
    return await settlement.write(conn)
