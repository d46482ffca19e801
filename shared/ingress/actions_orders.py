"""Order actions: `add` (validated against the cached catalog, placed exactly once) and `status`."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from shared.auth.keys import CLASSIC
from shared.db.orders import reads as sql
from shared.domain.order_types import OrderDraft, draft_order, fingerprint
from shared.domain.request_ids import chosen_request_id, generated_request_id
from shared.errors import DependencyDown, IncorrectOrderId, ServiceNotFound, ValidationFailed
from shared.ingress.params import parse_id, split_ids
from shared.ingress.registry import ActionContext, RawJson, action
from shared.ingress.views import status_answer
from shared.ordering.outcomes import PlacementRequest, existing_order


def _draft(ctx: ActionContext) -> OrderDraft:
    if not ctx.catalog.loaded:  # the database was down since start: we cannot tell a bad service id
        raise DependencyDown()
    service_id = parse_id(ctx.param("service"), ServiceNotFound)
    terms = ctx.catalog.terms(service_id)
    if terms is None:
        raise ServiceNotFound()
    return draft_order(ctx.params, terms, lines_max=ctx.settings.list_lines_max)


@action("add")
async def add(ctx: ActionContext) -> RawJson | dict[str, int]:
    sent = chosen_request_id(ctx.params.get("request_id"), ctx.idempotency_key, required=ctx.key.profile != CLASSIC)
    # A classic key's order without a request id gets its own, made once here: it is placed exactly once for
    # this request (a batch re-run finds it), and never matches another.
    request_id = sent if sent is not None else generated_request_id(uuid.uuid4().hex)
    params_hash = fingerprint(ctx.params)
    try:
        draft = _draft(ctx)
    except ValidationFailed:
        if sent is None:
            raise
        # A retry of an order placed before its service changed (deactivated, new limits) must still get the
        # original answer; with other parameters it is a 409. Only a never-placed request gets the error.
        async with ctx.connection() as conn:
            original = await existing_order(
                conn, account_id=ctx.account_id, request_id=request_id, params_hash=params_hash
            )
        if original is None:
            raise
        return {"order": original}
    order_id = await ctx.placer.place(
        PlacementRequest(
            account_id=ctx.account_id,
            request_id=request_id,
            params_hash=params_hash,
            draft=draft,
            currency=ctx.key.currency,
            correlation_id=ctx.correlation_id,
        )
    )
    return RawJson(b'{"order":%d}' % order_id)  # the hot path's answer, without a JSON encoder


@action("status")
async def status(ctx: ActionContext) -> dict[str, Any]:
    batch = ctx.params.get("orders", "").strip()
    if not batch:
        order_id = parse_id(ctx.param("order"))
        async with ctx.connection() as conn:
            rows = await sql.status_columns(conn, account_id=ctx.account_id, order_ids=[order_id])
        if order_id not in rows:
            raise IncorrectOrderId()
        return status_answer(rows[order_id])
    tokens = split_ids(batch, limit=ctx.settings.batch_ids_max, name="orders")
    ids: dict[str, int] = {}
    for token in tokens:
        with contextlib.suppress(IncorrectOrderId):
            ids[token] = parse_id(token)
    async with ctx.connection() as conn:
        rows = await sql.status_columns(conn, account_id=ctx.account_id, order_ids=list(ids.values()))
    answer: dict[str, Any] = {}
    for token in tokens:
        row = rows.get(ids.get(token, 0))
        answer[token] = status_answer(row) if row is not None else {"error": IncorrectOrderId.message}
    return answer
