"""Refill actions: `refill` (single or batch) records a Pending refill for the worker; `refill_status`.

Eligibility (decided here, documented in the API docs): the order's service offers refills, the order ended
Completed or Partial, fewer than `refills_per_order_max` refills were ever requested for it (whatever became of
them) and fewer than `refills_pending_max` are still open. All of it is checked under a row lock on the order,
so concurrent requests cannot exceed the limits.
"""

from __future__ import annotations

import contextlib
from typing import Any

from shared.db import refills as sql
from shared.db.orders.locks import lock_account_order
from shared.db.outbox import add_event
from shared.db.types import Conn
from shared.domain.events import RefillRequested, event
from shared.domain.statuses import OrderState, public_refill_status
from shared.errors import IncorrectOrderId, NotEligible, RefillNotFound, ValidationFailed
from shared.ingress.params import parse_id, split_ids
from shared.ingress.registry import ActionContext, action

REFILLABLE = frozenset({OrderState.COMPLETED, OrderState.PARTIAL})


async def _request_refill(conn: Conn, ctx: ActionContext, order_id: int) -> int:
    async with conn.transaction():
        order = await lock_account_order(conn, account_id=ctx.account_id, order_id=order_id)
        if order is None:
            raise IncorrectOrderId()
        if not order.service_refill or order.view.state not in REFILLABLE:
            raise NotEligible("Order not eligible for refill")
        counts = await sql.refill_counts(conn, order_id=order_id)
        if counts.open >= ctx.settings.refills_pending_max:
            raise NotEligible("A refill of this order is already in progress")
        if counts.total >= ctx.settings.refills_per_order_max:
            raise NotEligible("Refill limit reached for this order")
        refill_id = await sql.insert_refill(conn, order_id=order_id, account_id=ctx.account_id)
        await add_event(
            conn,
            event(
                RefillRequested.TYPE,
                RefillRequested(refill_id=refill_id, order_id=order_id, account_id=ctx.account_id),
                ctx.correlation_id,
            ),
        )
    return refill_id


@action("refill")
async def refill(ctx: ActionContext) -> Any:
    batch = ctx.params.get("orders", "").strip()
    if not batch:
        order_id = parse_id(ctx.param("order"))
        async with ctx.connection() as conn:
            return {"refill": await _request_refill(conn, ctx, order_id)}
    answer: list[dict[str, Any]] = []
    async with ctx.connection() as conn:
        for token in split_ids(batch, limit=ctx.settings.batch_ids_max, name="orders"):
            order: int | str = token
            try:
                order = parse_id(token)
                answer.append({"order": order, "refill": await _request_refill(conn, ctx, order)})
            except ValidationFailed as exc:
                answer.append({"order": order, "refill": {"error": exc.message}})
    return answer


@action("refill_status")
async def refill_status(ctx: ActionContext) -> Any:
    batch = ctx.params.get("refills", "").strip()
    if not batch:
        refill_id = parse_id(ctx.param("refill"), RefillNotFound)
        async with ctx.connection() as conn:
            found = await sql.refill_statuses(conn, account_id=ctx.account_id, refill_ids=[refill_id])
        if refill_id not in found:
            raise RefillNotFound()
        return {"status": public_refill_status(found[refill_id])}
    tokens = split_ids(batch, limit=ctx.settings.batch_ids_max, name="refills")
    ids: dict[str, int] = {}
    for token in tokens:
        with contextlib.suppress(RefillNotFound):
            ids[token] = parse_id(token, RefillNotFound)
    async with ctx.connection() as conn:
        found = await sql.refill_statuses(conn, account_id=ctx.account_id, refill_ids=list(ids.values()))
    answer: list[dict[str, Any]] = []
    for token in tokens:
        known = ids.get(token)
        if known is not None and known in found:
            answer.append({"refill": known, "status": public_refill_status(found[known])})
        else:
            answer.append({"refill": known or token, "status": {"error": RefillNotFound.message}})
    return answer
