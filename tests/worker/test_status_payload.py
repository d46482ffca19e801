"""The webhook of an order's status change carries what `status` answers for the order at that moment: the
same fields with the same values (one builder for both). Real Placer, the simulator over HTTP, the worker's
use cases; the api's answer from the same row through the `status` action's own view."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from shared.db.orders.reads import status_columns
from shared.ingress.views import status_answer
from shared.ordering.placement import Placer
from shared.settings import Settings
from shared.webhooks.ingest import event_data
from tests.support.factories import make_account
from tests.support.worker import SimProcess, order_row, place, unique_link, wait_for
from tests.worker.components import Parts, worker_parts

pytestmark = pytest.mark.usefixtures("ledger_clean")


@pytest.fixture
async def parts(wpool: asyncpg.Pool, wsettings: Settings) -> AsyncIterator[Parts]:
    async with worker_parts(wpool, wsettings) as parts:
        yield parts


async def status_of(pool: asyncpg.Pool, account_id: int, order_id: int) -> dict[str, Any]:
    """The api's `status` entry for the order, read and built as the action does."""
    async with pool.acquire() as conn:
        rows = await status_columns(conn, account_id=account_id, order_ids=[order_id])
    return status_answer(rows[order_id])


async def webhook_data(pool: asyncpg.Pool, order_id: int) -> list[tuple[str, dict[str, Any]]]:
    """The `data` each order event's webhook carries (as the dispatcher stores and sends it), oldest first."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT event_type, payload FROM outbox WHERE (payload->>'order')::bigint = $1 ORDER BY created_at",
            order_id,
        )
    return [(r["event_type"], json.loads(event_data(r["payload"]))) for r in rows]


def without_order(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "order"}


async def test_status_change_webhook_carries_what_status_answers_at_that_moment(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess
) -> None:
    account = await make_account(wpool, balance="10")
    order_id = await place(
        placer, wpool, account_id=account, service_id=catalog["default"], link=unique_link(), quantity=100
    )

    # Bought: In progress, the upstream has not reported start_count/remains yet.
    assert await parts.submitter.submit_named([order_id]) == 1
    answer = await status_of(wpool, account, order_id)
    assert answer["status"] == "In progress"
    assert answer["remains"] == "100"
    events = await webhook_data(wpool, order_id)
    assert [e[0] for e in events] == ["order.status_changed"]
    assert events[0][1]["order"] == order_id
    assert without_order(events[0][1]) == answer

    # Polled to its end: the terminal events carry the final answer.
    async def done() -> asyncpg.Record | None:
        await parts.poller.poll_once()
        row = await order_row(wpool, order_id)
        return row if row["status"] in ("completed", "partial", "canceled") else None

    await wait_for(done, timeout=15, interval=0.2)
    answer = await status_of(wpool, account, order_id)
    events = await webhook_data(wpool, order_id)
    assert [e[0] for e in events][-2:] == ["order.status_changed", "order.completed"]
    for _, data in events[-2:]:
        assert without_order(data) == answer
