"""Refill and cancel paths, low-balance alerts, and the operator's resolution of parked orders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from shared.db import refills as refills_sql
from shared.db.accounts import balance_of, topup
from shared.db.orders import cancels as cancels_sql
from shared.ordering.placement import Placer
from shared.settings import Settings
from shared.upstream.client import UpstreamClient
from shared.upstream.results import Accepted
from shared.worker import parked
from tests.support.factories import make_account
from tests.support.worker import SimProcess, order_row, place, unique_link, wait_for
from tests.worker.components import Parts, worker_parts

pytestmark = pytest.mark.usefixtures("ledger_clean")


@pytest.fixture
async def parts(wpool: asyncpg.Pool, wsettings: Settings) -> AsyncIterator[Parts]:
    async with worker_parts(wpool, wsettings) as parts:
        yield parts


async def bought(parts: Parts, placer: Placer, pool: asyncpg.Pool, service_id: int, marker: str = "") -> int:
    account = await make_account(pool, balance="10")
    order_id = await place(
        placer, pool, account_id=account, service_id=service_id, link=unique_link(marker), quantity=100
    )
    await parts.submitter.submit_named([order_id])
    assert (await order_row(pool, order_id))["status"] == "in_progress"
    return order_id


async def until_status(parts: Parts, pool: asyncpg.Pool, order_id: int, *statuses: str) -> asyncpg.Record:
    async def check() -> asyncpg.Record | None:
        await parts.poller.poll_once()
        await parts.refills.poll_once()
        row = await order_row(pool, order_id)
        return row if row["status"] in statuses else None

    return await wait_for(check, timeout=15, interval=0.2)


async def request_refill(pool: asyncpg.Pool, order_id: int) -> int:
    row = await order_row(pool, order_id)
    async with pool.acquire() as conn:
        return await refills_sql.insert_refill(conn, order_id=order_id, account_id=row["account_id"])


async def refill_row(pool: asyncpg.Pool, refill_id: int) -> asyncpg.Record:
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM refills WHERE id = $1", refill_id)
    assert row is not None
    return row


async def refill_events(pool: asyncpg.Pool, refill_id: int) -> list[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT payload FROM outbox WHERE event_type = 'refill.status_changed' "
            "AND (payload->>'refill')::bigint = $1 ORDER BY created_at",
            refill_id,
        )
    return [r["payload"]["status"] for r in rows]


async def test_refill_is_forwarded_polled_and_reported(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess
) -> None:
    order_id = await bought(parts, placer, wpool, catalog["default"])
    await until_status(parts, wpool, order_id, "completed")
    refill_id = await request_refill(wpool, order_id)
    assert await parts.refills.forward_named([refill_id]) == 1
    assert await parts.refills.forward_named([refill_id]) == 0  # a redelivery forwards nothing
    row = await refill_row(wpool, refill_id)
    assert row["status"] == "in_progress"
    assert row["provider_refill_id"] is not None

    async def done() -> bool:
        await parts.refills.poll_once()
        return (await refill_row(wpool, refill_id))["status"] == "completed"

    await wait_for(done, timeout=10)
    assert await refill_events(wpool, refill_id) == ["In progress", "Completed"]
    assert (await sim.stats())["calls"]["refill"] >= 1


async def test_refill_rejected_upstream_and_refill_of_a_service_without_refill(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int]
) -> None:
    order_id = await bought(parts, placer, wpool, catalog["default"], "refill_rejected")
    await until_status(parts, wpool, order_id, "completed")
    refill_id = await request_refill(wpool, order_id)
    await parts.refills.forward_named([refill_id])

    async def rejected() -> bool:
        await parts.refills.poll_once()
        return (await refill_row(wpool, refill_id))["status"] == "rejected"

    await wait_for(rejected, timeout=10)
    assert await refill_events(wpool, refill_id) == ["In progress", "Rejected"]

    other = await bought(parts, placer, wpool, catalog["norefill"])
    await until_status(parts, wpool, other, "completed")
    refill_id = await request_refill(wpool, other)
    await parts.refills.forward_named([refill_id])
    row = await refill_row(wpool, refill_id)
    assert row["status"] == "rejected"
    assert "does not offer refills" in row["last_error"]
    assert await refill_events(wpool, refill_id) == ["Rejected"]


async def test_cancel_of_a_bought_order_is_forwarded_and_its_outcome_refunded_by_polling(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess
) -> None:
    order_id = await bought(parts, placer, wpool, catalog["default"], "stuck")
    async with wpool.acquire() as conn:
        await cancels_sql.request_cancel(conn, order_id=order_id)
    assert await parts.cancels.requested(order_id) == 1
    assert await parts.cancels.requested(order_id) == 0  # forwarded once, whatever redeliveries
    assert (await sim.stats())["calls"]["cancel"] >= 1
    row = await until_status(parts, wpool, order_id, "canceled", "partial")
    # The simulator cancels what was not yet delivered: a full refund, or charge x remains / quantity.
    expected = row["charge"] if row["status"] == "canceled" else row["charge"] * row["remains"] / row["quantity"]
    assert row["refunded"] == expected.quantize(Decimal("0.00001"))
    assert row["cancel_forwarded_at"] is not None


async def test_cancel_not_offered_by_the_service_is_not_forwarded(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int]
) -> None:
    order_id = await bought(parts, placer, wpool, catalog["nocancel"])
    async with wpool.acquire() as conn:
        await cancels_sql.request_cancel(conn, order_id=order_id)
    await parts.cancels.requested(order_id)
    row = await order_row(wpool, order_id)
    assert row["last_error"] == "cancel not offered by the service"
    assert (await until_status(parts, wpool, order_id, "completed"))["refunded"] == 0


async def test_cancel_requested_before_the_order_was_bought_is_forwarded_by_the_sweeper(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int]
) -> None:
    account = await make_account(wpool, balance="10")
    order_id = await place(
        placer, wpool, account_id=account, service_id=catalog["default"], link=unique_link("stuck"), quantity=100
    )
    async with wpool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE orders SET status = 'submitting' WHERE id = $1", order_id)  # mid-submission
        await cancels_sql.request_cancel(conn, order_id=order_id)
    assert await parts.cancels.requested(order_id) == 0  # not bought yet: kept
    async with wpool.acquire() as conn:
        await conn.execute("UPDATE orders SET status = 'pending' WHERE id = $1", order_id)
    await parts.submitter.submit_named([order_id])
    assert (await order_row(wpool, order_id))["cancel_forwarded_at"] is None
    await parts.sweeper.sweep()
    assert (await order_row(wpool, order_id))["cancel_forwarded_at"] is not None
    row = await until_status(parts, wpool, order_id, "canceled", "partial")
    assert row["refunded"] > 0


async def test_balance_low_once_per_crossing(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], wsettings: Settings
) -> None:
    assert wsettings.low_balance_threshold == Decimal("5")
    account = await make_account(wpool, balance="7")

    async def alerts() -> list[dict[str, object]]:
        async with wpool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT payload FROM outbox WHERE event_type = 'balance.low' AND (payload->>'account_id')::bigint = $1"
                " ORDER BY created_at",
                account,
            )
        return [r["payload"] for r in rows]

    async def order(quantity: int) -> None:
        order_id = await place(
            placer, wpool, account_id=account, service_id=catalog["default"], link=unique_link(), quantity=quantity
        )
        await parts.submitter.submit_named([order_id])

    await order(1000)  # 7 → 6: above the threshold
    assert await alerts() == []
    await order(1500)  # 6 → 4.5: crossed
    await order(1000)  # 4.5 → 3.5: still below, no second alert
    assert [a["balance"] for a in await alerts()] == ["4.50"]
    assert (await alerts())[0]["threshold"] == "5.00"
    async with wpool.acquire() as conn:
        await topup(conn, account_id=account, amount=Decimal("10"))  # 13.5: back above, re-armed
    await order(9000)  # 13.5 → 4.5: crossed again
    assert len(await alerts()) == 2


async def test_operator_resolves_parked_orders(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess, wsettings: Settings
) -> None:
    async def parked_order() -> int:
        account = await make_account(wpool, balance="10")
        order_id = await place(
            placer, wpool, account_id=account, service_id=catalog["default"], link=unique_link("5xx"), quantity=100
        )
        await parts.submitter.submit_named([order_id])
        assert (await order_row(wpool, order_id))["status"] == "unknown"
        return order_id

    # 1. The operator found the order upstream: attach its id, it is followed to its end.
    first = await parked_order()
    async with UpstreamClient(url=sim.api_url, key=wsettings.sim_key, settings=wsettings) as client:
        found = await client.add({"service": "1", "link": unique_link(), "quantity": "100"})
    assert isinstance(found, Accepted)
    resolution = await parked.attach_provider_order(
        wpool, wsettings, order_id=first, provider_order_id=found.provider_order_id
    )
    assert resolution.status == "in_progress"
    row = await until_status(parts, wpool, first, "completed")
    assert row["provider_order_id"] == found.provider_order_id

    # 2. The upstream has no such order: refund it all.
    second = await parked_order()
    await parked.refund(wpool, order_id=second)
    row = await order_row(wpool, second)
    assert (row["status"], row["refunded"]) == ("canceled", row["charge"])
    async with wpool.acquire() as conn:
        assert await balance_of(conn, row["account_id"]) == (Decimal("10.00000"), "USD")
    with pytest.raises(Exception, match="not parked"):
        await parked.refund(wpool, order_id=second)  # a second refund is refused

    # 3. Resubmit on the operator's word: pending again, the sweeper buys it.
    third = await parked_order()
    await parked.resubmit(wpool, order_id=third)
    assert (await order_row(wpool, third))["status"] == "pending"
    await sim.faults()
    async with wpool.acquire() as conn:  # the link's 5xx marker would fail it again: point it elsewhere
        await conn.execute("UPDATE orders SET link = $2 WHERE id = $1", third, unique_link())
    await parts.sweeper.sweep()
    row = await order_row(wpool, third)
    assert (row["status"], row["submit_attempts"]) == ("in_progress", 2)
