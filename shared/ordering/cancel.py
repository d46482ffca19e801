"""Cancel of an order that provably never reached an upstream (the api's `cancel` of such a pending order)."""

from __future__ import annotations

from shared.db.orders import cancels as sql
from shared.db.types import Conn
from shared.domain.lifecycle import OrderView
from shared.domain.statuses import OrderState
from shared.ordering.settlement import Settlement


async def cancel_unsent(conn: Conn, order: OrderView, *, correlation_id: str | None) -> None:
    """'canceled', nothing delivered, the whole charge refunded, `order.status_changed` + `order.canceled`:
    through the settlement path the worker uses, inside the caller's transaction with the order locked
    (`shared.db.orders.locks`). A refund already paid raises `RefundAlreadyPaid` and the transaction rolls back."""
    await sql.finish_canceled(conn, order_id=order.id, error=None)
    settlement = Settlement()
    settlement.order_moved(
        order,
        state=OrderState.CANCELED,
        start_count=order.start_count,
        remains=order.quantity,
        memo="canceled before submission",
        correlation_id=correlation_id,
    )
    await settlement.write(conn)
