"""Submission while Postgres goes away: a PRIVATE Postgres stops while the upstream `add` is out and comes
back. The worker keeps the upstream's answer and records it once the database is back: the order is bought
(once), not left for the sweeper to take for one whose worker stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.db.pool import create_pool
from shared.ordering.placement import Placer
from shared.settings import Settings
from tests.support.factories import make_account
from tests.support.isolation import migrated_database
from tests.support.private_services import PrivatePostgres, private_postgres
from tests.support.worker import SimProcess, make_provider_services, order_row, place, unique_link, wait_for
from tests.worker.components import worker_parts

__all__ = ["private_postgres"]


@pytest.fixture
async def outage_settings(private_postgres: PrivatePostgres, wsettings: Settings) -> Settings:
    url = private_postgres.database_url("panelflow")
    await migrated_database(url)
    # Long enough for a Postgres restart on a loaded machine: the worker retries recording for this long.
    return wsettings.model_copy(update={"database_url": url, "db_pool_min": 0, "worker_submitting_timeout_s": 60.0})


@pytest.fixture
async def outage_pool(outage_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(outage_settings)
    yield pool
    await pool.close()


async def test_answer_received_while_the_database_is_down_is_recorded_once_it_is_back(
    private_postgres: PrivatePostgres, outage_pool: asyncpg.Pool, outage_settings: Settings, sim: SimProcess
) -> None:
    services = await make_provider_services(outage_pool, url=sim.api_url, key=outage_settings.sim_key)
    account = await make_account(outage_pool, balance="10")
    placer = Placer(outage_pool, outage_settings)
    await placer.start()
    try:
        link = unique_link("latency:1500")
        order_id = await place(placer, outage_pool, account_id=account, service_id=services["default"], link=link,
                               quantity=100)  # fmt: skip
    finally:
        await placer.close()

    async def request_out() -> bool:
        return bool((await sim.stats())["adds_per_link"].get(link, 0) == 1)

    async with worker_parts(outage_pool, outage_settings) as parts:
        submitting = asyncio.create_task(parts.submitter.submit_named([order_id]))
        await wait_for(request_out, timeout=10, interval=0.05)
        await private_postgres.stop(mode="fast")  # the upstream answers (in 1.5 s) while the database is down
        await asyncio.sleep(2.0)
        assert not submitting.done(), "the answer is kept while the database is down"
        await private_postgres.start()
        assert await asyncio.wait_for(submitting, timeout=60) == 1

    row = await order_row(outage_pool, order_id)
    assert (row["status"], row["last_error"]) == ("in_progress", None)
    assert row["provider_order_id"] is not None
    stats = await sim.stats()
    assert (stats["adds_per_link"][link], stats["orders_per_link"][link]) == (1, 1)
