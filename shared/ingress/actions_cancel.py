"""`cancel` (one `order` or a batch of `orders`): always answers a list with a result per id.

- 'pending' and provably never sent upstream (no submit attempt, or only one whose request never started):
  canceled at once, the whole charge refunded in the same transaction through the worker's own settlement
  path (`shared.ordering.cancel` → `shared.ordering.settlement`: order row, ledger 'refund' row,
  `orders.refunded`, balance, exactly once), with `order.status_changed` + `order.canceled` events.
- submitted ('in_progress' / 'processing'), or 'pending' after an attempt that may have reached the upstream
  (an unknown outcome being resent), and the service allows cancel: the cancel is recorded
  (`cancel_requested_at`) and a `cancel.requested` event asks the worker to forward it upstream (once the
  order is bought, for a pending one); the outcome and its refund arrive through status polling.
- anything else (submitting, parked, ended, already requested, service without cancel): a per-id error.
The order row is locked first, so the worker can never submit an order while it is being canceled.
"""

from __future__ import annotations

from typing import Any

from shared.db.orders import cancels as sql
from shared.db.orders.locks import lock_account_order
from shared.db.outbox import add_events
from shared.db.types import Conn
from shared.domain.events import CancelRequested, event
from shared.domain.statuses import IN_FLIGHT, OrderState
from shared.errors import IncorrectOrderId, NotEligible, ValidationFailed
from shared.ingress.params import parse_id, split_ids
from shared.ingress.registry import ActionContext, action
from shared.ordering.cancel import cancel_unsent


async def _cancel(conn: Conn, ctx: ActionContext, order_id: int) -> None:
    async with conn.transaction():
        order = await lock_account_order(conn, account_id=ctx.account_id, order_id=order_id)
        if order is None:
            raise IncorrectOrderId()
        view = order.view
        if view.state is OrderState.PENDING and order.never_sent:
            await cancel_unsent(conn, view, correlation_id=ctx.correlation_id)
            return
        if view.state not in (*IN_FLIGHT, OrderState.PENDING) or not order.service_cancel:
            raise NotEligible("Order not eligible for cancel")
        if order.cancel_requested_at is not None:
            raise NotEligible("Cancel already requested for this order")
        await sql.request_cancel(conn, order_id=order_id)
        request = CancelRequested(order_id=order_id, account_id=ctx.account_id)
        await add_events(conn, [event(CancelRequested.TYPE, request, ctx.correlation_id)])


@action("cancel")
async def cancel(ctx: ActionContext) -> list[dict[str, Any]]:
    batch = ctx.params.get("orders", "").strip()
    tokens = split_ids(batch, limit=ctx.settings.batch_ids_max, name="orders") if batch else [ctx.param("order")]
    answer: list[dict[str, Any]] = []
    async with ctx.connection() as conn:
        for token in tokens:
            order: int | str = token
            try:
                order = parse_id(token)
                await _cancel(conn, ctx, order)
                answer.append({"order": order, "cancel": 1})
            except ValidationFailed as exc:
                answer.append({"order": order, "cancel": {"error": exc.message}})
    return answer
