"""A reseller's cancel while an order that may already exist upstream waits to be resent (chaos, issue 16).

The real api, worker and provider simulator run as processes. The simulator creates the order, then answers
502: the worker puts the order back to `pending` to resend the same request_id. A `cancel` in that window must
not refund an order the provider has; the order must end with the upstream's outcome, refunded once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from shared.db.pool import create_pool
from shared.settings import Settings
from tests.support.factories import make_customer
from tests.support.isolation import delete_amqp_names, fresh_database
from tests.support.processes import ApiProcess, ManagedProcess
from tests.support.worker import SimProcess, WorkerProcess, make_provider_services, unique_link


@pytest.fixture(scope="module")
async def stack_settings(settings: Settings) -> AsyncIterator[Settings]:
    """A stack of its own: with the session's database, the session api's relay would publish these orders."""
    async with fresh_database(settings.database_url, "cwin") as url:
        own = settings.model_copy(
            update={
                "database_url": url,
                "amqp_prefix": f"{settings.amqp_prefix}cwin",
                "sim_pending_s": 0.2,
                "sim_completion_s": 120.0,  # still running upstream when the cancel arrives there
                "worker_retry_base_s": 6.0,  # the window between the 502 and the resend
                "worker_sweep_s": 0.3,
                "worker_poll_min_s": 0.3,
                "worker_poll_idle_s": 0.1,
                "relay_poll_s": 0.2,
            }
        )
        yield own
        await delete_amqp_names(own)


@pytest.fixture(scope="module")
async def pool(stack_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(stack_settings)
    yield pool
    await pool.close()


async def _row(pool: asyncpg.Pool, order_id: int) -> asyncpg.Record:
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
    assert row is not None
    return row


async def _refunds(pool: asyncpg.Pool, order_id: int) -> list[Decimal]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT amount FROM ledger WHERE order_id = $1 AND kind = 'refund'", order_id)
    return [r["amount"] for r in rows]


async def _until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_cancel_while_an_ambiguous_order_waits_for_its_resend_is_never_refunded_while_it_exists_upstream(
    stack_settings: Settings, pool: asyncpg.Pool, logs_dir: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    sim = await SimProcess(stack_settings, logs_dir / f"cwin-sim-{run}.log").started()
    ids = await make_provider_services(pool, url=sim.api_url, key=stack_settings.sim_key, idempotent=True)
    account_id, key = await make_customer(pool, balance="100")
    worker = WorkerProcess(stack_settings, logs_dir / f"cwin-worker-{run}.log")
    api = ApiProcess(stack_settings, logs_dir / f"cwin-api-{run}.log")
    processes: list[ManagedProcess] = [sim, worker, api]
    link = unique_link()
    try:
        # The provider creates the order, then answers 502 (once).
        await sim.faults([{"fault": "ghost", "mode": "502", "action": "add", "times": 1}])
        await worker.started()
        await api.started()
        async with aiohttp.ClientSession() as session:

            async def call(**form: str) -> Any:
                async with session.post(api.url + "/api/v2", data={"key": key, **form}) as resp:
                    assert resp.status == 200, await resp.text()
                    return await resp.json()

            placed = await call(
                action="add", service=str(ids["default"]), link=link, quantity="1000", request_id=f"cwin-{run}"
            )
            order_id = placed["order"]

            async def back_to_pending() -> bool:
                row = await _row(pool, order_id)
                return bool(row["status"] == "pending" and row["submit_attempts"] == 1)

            await _until(back_to_pending, 30, "the 502 to put the order back to pending")
            assert (await sim.stats())["orders_per_link"][link] == 1  # the provider has it
            assert (await call(action="cancel", order=str(order_id))) == [{"order": order_id, "cancel": 1}]

            # The order exists upstream: no refund until the upstream says how it ended.
            row = await _row(pool, order_id)
            assert row["status"] == "pending", dict(row)
            assert row["refunded"] == 0
            assert await _refunds(pool, order_id) == []
            assert (await call(action="status", order=str(order_id)))["status"] == "Pending"

            # The worker resends the same request_id (learns the upstream order), forwards the cancel, and the
            # upstream's outcome is settled by polling.
            async def ended() -> bool:
                return (await _row(pool, order_id))["status"] in ("canceled", "partial")

            await _until(ended, 60, "the upstream's cancel to be settled")
            shown = await call(action="status", order=str(order_id))
            stats = await sim.stats()
    finally:
        for process in reversed(processes):
            process.stop(timeout=20)

    row = await _row(pool, order_id)
    assert row["provider_order_id"] is not None  # followed: the resend found the provider's order
    assert row["cancel_forwarded_at"] is not None
    assert (stats["adds_per_link"][link], stats["orders_per_link"][link]) == (2, 1)  # sent twice, bought once
    assert stats["calls"]["cancel"] == 1
    expected = row["charge"] if row["status"] == "canceled" else row["charge"] * row["remains"] / row["quantity"]
    assert await _refunds(pool, order_id) == [expected]  # one refund, matching the upstream's outcome
    assert row["refunded"] == expected
    assert shown["status"] == {"canceled": "Canceled", "partial": "Partial"}[row["status"]]
    async with pool.acquire() as conn:
        balance = await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", account_id)
    assert balance == Decimal("100") - row["charge"] + expected
