"""`cancel`, `refill` and `refill_status`: money moves exactly once, events are written, limits hold."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import asyncpg
import pytest

from shared.db.orders import submission as submissions_sql
from shared.domain.events import CancelRequested, OrderStatusChanged
from tests.api.conftest import ApiClient, balance_of, ledger_clean, wait_for_service
from tests.support.factories import make_customer, make_service

LINK = "https://t.me/channel"


@pytest.fixture(scope="module")
async def services(pool: asyncpg.Pool, client: ApiClient) -> dict[str, int]:
    ids = {
        "both": await make_service(pool, rate="2.00", refill=True, cancel=True),
        "neither": await make_service(pool, rate="2.00", refill=False, cancel=False),
    }
    _, key = await make_customer(pool)
    await wait_for_service(client, key, *ids.values())
    return ids


async def place(client: ApiClient, key: str, service_id: int, quantity: int = 1000) -> int:
    reply = await client.call(key, "add", service=service_id, link=LINK, quantity=quantity, request_id=uuid.uuid4().hex)
    assert reply.status == 200, reply.body
    order_id: int = reply.body["order"]
    return order_id


async def set_state(pool: asyncpg.Pool, order_id: int, status: str) -> None:
    """What the worker does when the upstream accepts / finishes an order."""
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE orders SET status = $2, provider_order_id = 'up-' || id WHERE id = $1", order_id, status
        )


async def outbox_events(pool: asyncpg.Pool, order_id: int) -> list[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """
            SELECT event_type FROM outbox
            WHERE (payload->>'order_id')::bigint = $1 OR (payload->>'order')::bigint = $1
               OR payload->'order_ids' @> to_jsonb($1::bigint)
            ORDER BY created_at
            """,
            order_id,
        )
    return [r["event_type"] for r in rows]


# --- cancel ----------------------------------------------------------------------------------------------------


async def test_cancel_of_a_pending_order_refunds_exactly_once(
    client: ApiClient, pool: asyncpg.Pool, services: dict[str, int]
) -> None:
    account_id, key = await make_customer(pool, balance="10")
    order_id = await place(client, key, services["neither"])  # no cancel flag needed: never sent upstream
    assert await balance_of(pool, account_id) == Decimal("8")
    # Two cancels at once and one after: exactly one succeeds, one refund.
    first, second = await asyncio.gather(
        client.call(key, "cancel", order=order_id), client.call(key, "cancel", orders=str(order_id))
    )
    results = sorted([first.body[0]["cancel"], second.body[0]["cancel"]], key=str)
    assert results == [1, {"error": "Order not eligible for cancel"}]
    again = await client.call(key, "cancel", order=order_id)
    assert again.body == [{"order": order_id, "cancel": {"error": "Order not eligible for cancel"}}]
    assert await balance_of(pool, account_id) == Decimal("10")
    status = await client.call(key, "status", order=order_id)
    assert status.body == {
        "charge": "0",
        "start_count": "0",
        "status": "Canceled",
        "remains": "1000",
        "currency": "USD",
    }
    async with pool.acquire() as conn:
        refunds = await conn.fetch("SELECT amount FROM ledger WHERE order_id = $1 AND kind = 'refund'", order_id)
    assert [r["amount"] for r in refunds] == [Decimal("2")]
    assert await outbox_events(pool, order_id) == ["order.placed", "order.status_changed", "order.canceled"]
    # The webhooks of the change carry what `status` answers for the order.
    async with pool.acquire() as conn:
        order_events = await conn.fetch(
            "SELECT event_type, payload FROM outbox WHERE (payload->>'order')::bigint = $1", order_id
        )
    for row in order_events:
        body = OrderStatusChanged.from_payload(row["payload"])
        assert (body.account_id, body.order, body.shown.answer()) == (account_id, order_id, status.body)
    assert await ledger_clean(pool)


async def attempt(pool: asyncpg.Pool, order_id: int, *, sent: bool) -> None:
    """A submission attempt as the worker makes it: claimed with its send mark, the mark cleared by the real
    statement when the request is written (`sent`), then back to pending (not sent / unknown outcome)."""
    async with pool.acquire() as conn:
        number = await conn.fetchval(
            "UPDATE orders SET status = 'submitting', submit_attempts = submit_attempts + 1,"
            " submit_unsent_attempt = submit_attempts + 1 WHERE id = $1 RETURNING submit_attempts",
            order_id,
        )
        if sent:
            assert await submissions_sql.mark_sending(conn, [(order_id, number)]) == {order_id}
        await conn.execute("UPDATE orders SET status = 'pending' WHERE id = $1", order_id)


@pytest.mark.parametrize(
    ("attempts", "at_once"),
    [((False,), True), ((True,), False), ((True, False), False), ((False, False), True)],
    ids=["never-sent", "sent", "sent-then-not-sent", "twice-never-sent"],
)
async def test_cancel_of_a_pending_order_is_immediate_only_when_it_provably_never_reached_the_upstream(
    client: ApiClient, pool: asyncpg.Pool, services: dict[str, int], attempts: tuple[bool, ...], at_once: bool
) -> None:
    account_id, key = await make_customer(pool, balance="10")
    order_id = await place(client, key, services["both"])
    for sent in attempts:
        await attempt(pool, order_id, sent=sent)
    reply = await client.call(key, "cancel", order=order_id)
    assert reply.body == [{"order": order_id, "cancel": 1}]
    status = await client.call(key, "status", order=order_id)
    async with pool.acquire() as conn:
        requested = await conn.fetchval("SELECT cancel_requested_at FROM orders WHERE id = $1", order_id)
    events = await outbox_events(pool, order_id)
    if at_once:
        assert status.body["status"] == "Canceled"
        assert await balance_of(pool, account_id) == Decimal("10")
        assert (requested, events) == (None, ["order.placed", "order.status_changed", "order.canceled"])
    else:  # it may exist upstream: the worker forwards the cancel once the resend finds it; no refund yet
        assert status.body["status"] == "Pending"
        assert await balance_of(pool, account_id) == Decimal("8")
        assert requested is not None
        assert events == ["order.placed", "cancel.requested"]
    assert await ledger_clean(pool)


async def test_cancel_of_a_pending_order_that_may_exist_upstream_needs_a_service_that_allows_cancel(
    client: ApiClient, pool: asyncpg.Pool, services: dict[str, int]
) -> None:
    account_id, key = await make_customer(pool, balance="10")
    order_id = await place(client, key, services["neither"])
    await attempt(pool, order_id, sent=True)
    reply = await client.call(key, "cancel", order=order_id)
    assert reply.body == [{"order": order_id, "cancel": {"error": "Order not eligible for cancel"}}]
    assert await balance_of(pool, account_id) == Decimal("8")
    assert await outbox_events(pool, order_id) == ["order.placed"]


async def test_cancel_of_a_submitted_order_asks_the_worker(
    client: ApiClient, pool: asyncpg.Pool, services: dict[str, int]
) -> None:
    account_id, key = await make_customer(pool, balance="10")
    order_id = await place(client, key, services["both"])
    await set_state(pool, order_id, "in_progress")
    reply = await client.call(key, "cancel", orders=f"{order_id}")
    assert reply.body == [{"order": order_id, "cancel": 1}]
    async with pool.acquire() as conn:
        requested = await conn.fetchval("SELECT cancel_requested_at FROM orders WHERE id = $1", order_id)
        payload = await conn.fetchval(
            "SELECT payload FROM outbox WHERE event_type = 'cancel.requested' AND (payload->>'order_id')::bigint = $1",
            order_id,
        )
    assert requested is not None
    assert payload == {"order_id": order_id, "account_id": account_id}
    assert CancelRequested.from_payload(payload) == CancelRequested(order_id=order_id, account_id=account_id)
    assert await balance_of(pool, account_id) == Decimal("8")  # the money moves when the upstream answers
    again = await client.call(key, "cancel", order=order_id)
    assert again.body[0]["cancel"] == {"error": "Cancel already requested for this order"}
    assert (await outbox_events(pool, order_id)).count("cancel.requested") == 1


async def test_cancel_refusals_per_id(client: ApiClient, pool: asyncpg.Pool, services: dict[str, int]) -> None:
    _, key = await make_customer(pool, balance="10")
    _, other_key = await make_customer(pool, balance="10")
    no_cancel = await place(client, key, services["neither"])
    await set_state(pool, no_cancel, "in_progress")
    done = await place(client, key, services["both"])
    await set_state(pool, done, "completed")
    foreign = await place(client, other_key, services["both"])
    reply = await client.call(key, "cancel", orders=f"{no_cancel},{done},{foreign},zz")
    assert reply.status == 200
    assert reply.body == [
        {"order": no_cancel, "cancel": {"error": "Order not eligible for cancel"}},
        {"order": done, "cancel": {"error": "Order not eligible for cancel"}},
        {"order": foreign, "cancel": {"error": "Incorrect order ID"}},
        {"order": "zz", "cancel": {"error": "Incorrect order ID"}},
    ]


# --- refill ----------------------------------------------------------------------------------------------------


async def test_refill_of_a_completed_order_and_its_status(
    client: ApiClient, pool: asyncpg.Pool, services: dict[str, int]
) -> None:
    account_id, key = await make_customer(pool, balance="10")
    order_id = await place(client, key, services["both"])
    await set_state(pool, order_id, "completed")
    reply = await client.call(key, "refill", order=order_id)
    assert reply.status == 200
    refill_id = reply.body["refill"]
    assert isinstance(refill_id, int)
    async with pool.acquire() as conn:
        payload = await conn.fetchval(
            "SELECT payload FROM outbox WHERE event_type = 'refill.requested' AND (payload->>'refill_id')::bigint = $1",
            refill_id,
        )
    assert payload == {"refill_id": refill_id, "order_id": order_id, "account_id": account_id}
    assert (await client.call(key, "refill_status", refill=refill_id)).body == {"status": "Pending"}
    async with pool.acquire() as conn:
        await conn.execute("UPDATE refills SET status = 'completed' WHERE id = $1", refill_id)
    batch = await client.call(key, "refill_status", refills=f"{refill_id},999999999,x")
    assert batch.body == [
        {"refill": refill_id, "status": "Completed"},
        {"refill": 999999999, "status": {"error": "Refill not found"}},
        {"refill": "x", "status": {"error": "Refill not found"}},
    ]
    missing = await client.call(key, "refill_status", refill=999999999)
    assert (missing.status, missing.body) == (400, {"error": "Refill not found"})


async def test_refill_eligibility_and_limits(client: ApiClient, pool: asyncpg.Pool, services: dict[str, int]) -> None:
    _, key = await make_customer(pool, balance="20")
    pending = await place(client, key, services["both"])
    no_refill = await place(client, key, services["neither"])
    await set_state(pool, no_refill, "completed")
    for order_id in (pending, no_refill):
        reply = await client.call(key, "refill", order=order_id)
        assert (reply.status, reply.body) == (400, {"error": "Order not eligible for refill"})
    assert (await client.call(key, "refill", order=424242424)).body == {"error": "Incorrect order ID"}

    partial = await place(client, key, services["both"])
    await set_state(pool, partial, "partial")
    first = (await client.call(key, "refill", order=partial)).body["refill"]
    # One open refill at a time (refills_pending_max = 1) ...
    busy = await client.call(key, "refill", order=partial)
    assert busy.body == {"error": "A refill of this order is already in progress"}
    # ... and at most refills_per_order_max = 3 per order, whatever became of the earlier ones.
    async with pool.acquire() as conn:
        await conn.execute("UPDATE refills SET status = 'completed' WHERE id = $1", first)
    for _ in range(2):
        refill_id = (await client.call(key, "refill", order=partial)).body["refill"]
        async with pool.acquire() as conn:
            await conn.execute("UPDATE refills SET status = 'rejected' WHERE id = $1", refill_id)
    over = await client.call(key, "refill", order=partial)
    assert over.body == {"error": "Refill limit reached for this order"}
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM refills WHERE order_id = $1", partial) == 3


async def test_concurrent_refills_respect_the_open_limit(
    client: ApiClient, pool: asyncpg.Pool, services: dict[str, int]
) -> None:
    _, key = await make_customer(pool, balance="10")
    order_id = await place(client, key, services["both"])
    await set_state(pool, order_id, "completed")
    replies = await asyncio.gather(*(client.call(key, "refill", order=order_id) for _ in range(8)))
    assert sorted(r.status for r in replies) == [200] + [400] * 7
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM refills WHERE order_id = $1", order_id) == 1


async def test_refill_batch_reports_per_id(client: ApiClient, pool: asyncpg.Pool, services: dict[str, int]) -> None:
    _, key = await make_customer(pool, balance="10")
    done = await place(client, key, services["both"])
    await set_state(pool, done, "completed")
    pending = await place(client, key, services["both"])
    reply = await client.call(key, "refill", orders=f"{done},{pending},nope")
    assert reply.status == 200
    assert isinstance(reply.body[0]["refill"], int)
    assert reply.body[0]["order"] == done
    assert reply.body[1:] == [
        {"order": pending, "refill": {"error": "Order not eligible for refill"}},
        {"order": "nope", "refill": {"error": "Incorrect order ID"}},
    ]
