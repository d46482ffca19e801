"""Each terminal outcome of an order, end to end through the use cases: placed (real Placer), submitted to the
simulator over HTTP, polled to its end; the exact refund, the ledger, the events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from shared.db.accounts import balance_of
from shared.ordering.placement import Placer
from shared.settings import Settings
from tests.support.factories import make_account
from tests.support.worker import SimProcess, order_row, place, unique_link, wait_for
from tests.worker.components import Parts, worker_parts

pytestmark = pytest.mark.usefixtures("ledger_clean")


@pytest.fixture
async def parts(wpool: asyncpg.Pool, wsettings: Settings) -> AsyncIterator[Parts]:
    async with worker_parts(wpool, wsettings) as parts:
        yield parts


async def poll_until_terminal(parts: Parts, pool: asyncpg.Pool, order_id: int) -> asyncpg.Record:
    async def done() -> asyncpg.Record | None:
        await parts.poller.poll_once()
        row = await order_row(pool, order_id)
        return row if row["status"] in ("completed", "partial", "canceled") else None

    return await wait_for(done, timeout=15, interval=0.2)


async def events_of(pool: asyncpg.Pool, order_id: int) -> list[tuple[str, dict[str, object]]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT event_type, payload FROM outbox WHERE (payload->>'order')::bigint = $1 ORDER BY created_at",
            order_id,
        )
    return [(r["event_type"], r["payload"]) for r in rows]


async def ledger_of(pool: asyncpg.Pool, order_id: int) -> dict[str, Decimal]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT kind, amount FROM ledger WHERE order_id = $1", order_id)
    return {r["kind"]: r["amount"] for r in rows}


async def test_completed_order_is_bought_once_captured_and_never_refunded(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess
) -> None:
    account = await make_account(wpool, balance="10")
    link = unique_link()
    order_id = await place(placer, wpool, account_id=account, service_id=catalog["default"], link=link, quantity=1000)

    assert await parts.submitter.submit_named([order_id]) == 1
    row = await order_row(wpool, order_id)
    assert row["status"] == "in_progress"
    assert row["provider_order_id"] is not None
    assert row["submit_attempts"] == 1
    assert await ledger_of(wpool, order_id) == {"reserve": Decimal("-1.00000"), "capture": Decimal("0")}
    assert [e[0] for e in await events_of(wpool, order_id)] == ["order.status_changed"]

    row = await poll_until_terminal(parts, wpool, order_id)
    assert (row["status"], row["remains"], row["refunded"]) == ("completed", 0, Decimal(0))
    async with wpool.acquire() as conn:
        assert await balance_of(conn, account) == (Decimal("9.00000"), "USD")
    events = await events_of(wpool, order_id)
    assert [e[0] for e in events] == ["order.status_changed", "order.status_changed", "order.completed"]
    completed = events[-1][1]
    assert completed["status"] == "Completed"
    assert completed["charge"] == "1.00"
    assert completed["account_id"] == account
    assert (await sim.stats())["adds_per_link"][link] == 1


async def test_partial_refunds_charge_times_remains_over_quantity_exactly_once(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int]
) -> None:
    account = await make_account(wpool, balance="10")
    # 1.00 per 1000 x 777 = 0.777; remains 123 → refund 0.777 x 123 / 777 = 0.123
    order_id = await place(
        placer, wpool, account_id=account, service_id=catalog["default"], link=unique_link("partial:123"), quantity=777
    )
    await parts.submitter.submit_named([order_id])
    row = await poll_until_terminal(parts, wpool, order_id)
    assert (row["status"], row["remains"]) == ("partial", 123)
    assert row["refunded"] == Decimal("0.12300")
    assert (await ledger_of(wpool, order_id))["refund"] == Decimal("0.12300")
    async with wpool.acquire() as conn:
        assert await balance_of(conn, account) == (Decimal("10") - Decimal("0.777") + Decimal("0.123"), "USD")
    last_type, last = (await events_of(wpool, order_id))[-1]
    assert last_type == "order.partial"
    assert (last["status"], last["charge"], last["remains"]) == ("Partial", "0.654", "123")
    # Polling on never sees it again: terminal rows are out of the poll index.
    assert row["next_attempt_at"] is None


async def test_canceled_upstream_refunds_the_whole_charge(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int]
) -> None:
    account = await make_account(wpool, balance="5")
    order_id = await place(
        placer, wpool, account_id=account, service_id=catalog["default"], link=unique_link("canceled"), quantity=2500
    )
    await parts.submitter.submit_named([order_id])
    row = await poll_until_terminal(parts, wpool, order_id)
    assert (row["status"], row["refunded"], row["charge"]) == ("canceled", Decimal("2.50000"), Decimal("2.50000"))
    async with wpool.acquire() as conn:
        assert await balance_of(conn, account) == (Decimal("5.00000"), "USD")
    last_type, last = (await events_of(wpool, order_id))[-1]
    assert (last_type, last["charge"]) == ("order.canceled", "0")  # as `status` reports it


@pytest.mark.parametrize(("role", "marker"), [("unknown_upstream", ""), ("default", "badlink")])
async def test_refused_by_the_upstream_is_canceled_with_a_full_refund_at_once(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess, role: str, marker: str
) -> None:
    account = await make_account(wpool, balance="3")
    link = unique_link(marker)
    order_id = await place(placer, wpool, account_id=account, service_id=catalog[role], link=link, quantity=100)
    await parts.submitter.submit_named([order_id])
    row = await order_row(wpool, order_id)
    assert row["status"] == "canceled"
    assert row["refunded"] == row["charge"] == Decimal("0.10000")
    assert "refused upstream" in row["last_error"]
    async with wpool.acquire() as conn:
        assert await balance_of(conn, account) == (Decimal("3.00000"), "USD")
    assert [e[0] for e in await events_of(wpool, order_id)] == ["order.status_changed", "order.canceled"]
    # Refused is final: never submitted again, whatever sweeps run.
    await parts.sweeper.sweep()
    assert (await sim.stats())["adds_per_link"][link] == 1


async def test_drip_feed_runs_and_interval_go_upstream_and_quantity_times_runs_is_charged(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess
) -> None:
    account = await make_account(wpool, balance="10")
    order_id = await place(
        placer,
        wpool,
        account_id=account,
        service_id=catalog["default"],
        link=unique_link(),
        quantity=100,
        runs=5,
        interval=10,
    )
    row = await order_row(wpool, order_id)
    assert (row["quantity"], row["charge"]) == (500, Decimal("0.50000"))
    await parts.submitter.submit_named([order_id])
    upstream = await sim_order(sim, (await order_row(wpool, order_id))["provider_order_id"])
    assert upstream["quantity"] == 500  # the upstream saw runs=5 of 100


async def sim_order(sim: SimProcess, provider_order_id: str) -> dict[str, object]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"{sim.url}/_sim/orders/{provider_order_id}") as resp:
        assert resp.status == 200
        result: dict[str, object] = await resp.json()
        return result
