"""Fixtures of the worker tests: a database of their own (`<session db>_worker`, so no other test's orders or
relay interfere), AMQP names of their own, the provider simulator as a real HTTP server (subprocess), and a
provider row + services mapped onto the simulator's catalog.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from shared.db.accounts import ledger_mismatches
from shared.db.pool import create_pool
from shared.ordering.placement import Placer
from shared.settings import Settings
from tests.support.isolation import delete_amqp_names, fresh_database
from tests.support.worker import SimProcess, make_provider_services


@pytest.fixture(scope="session")
async def worker_db(base_settings: Settings) -> AsyncIterator[str]:
    async with fresh_database(base_settings.database_url, "worker") as url:
        yield url


@pytest.fixture(scope="session")
async def wsettings(base_settings: Settings, worker_db: str) -> AsyncIterator[Settings]:
    """Fast clocks: the simulator finishes orders in about a second and the worker looks often."""
    settings = base_settings.model_copy(
        update={
            "database_url": worker_db,
            "amqp_prefix": f"{base_settings.amqp_prefix}w",
            "relay_poll_s": 0.2,
            "amqp_reconnect_max_s": 1.0,
            "consumer_stop_timeout_s": 5.0,
            "upstream_timeout_s": 2.0,
            "upstream_connect_timeout_s": 1.0,
            # The breaker has tests of its own; here a burst of injected faults must not open it.
            "upstream_breaker_failures": 100_000,
            "worker_poll_min_s": 0.2,
            "worker_poll_max_s": 2.0,
            "worker_poll_age_factor": 0.05,
            "worker_poll_idle_s": 0.1,
            "worker_poll_lease_s": 5.0,
            "worker_sweep_s": 0.5,
            "worker_retry_base_s": 0.5,
            "worker_retry_max_s": 2.0,
            "worker_submit_grace_s": 3.0,
            "worker_submitting_timeout_s": 6.0,
            "worker_drain_s": 5.0,
            "sim_pending_s": 0.2,
            "sim_completion_s": 0.8,
        }
    )
    yield settings
    await delete_amqp_names(settings)


@pytest.fixture(scope="session")
async def wpool(wsettings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(wsettings.model_copy(update={"db_pool_max": 20}))
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def sim(wsettings: Settings, logs_dir: Path) -> AsyncIterator[SimProcess]:
    process = await SimProcess(wsettings, logs_dir / "worker-sim.log").started()
    yield process
    process.stop()


@pytest.fixture(scope="session")
async def catalog(wpool: asyncpg.Pool, sim: SimProcess, wsettings: Settings) -> dict[str, int]:
    """Our services by role, each mapped onto a simulator service (see `make_provider_services`)."""
    return await make_provider_services(wpool, url=sim.api_url, key=wsettings.sim_key)


@pytest.fixture(scope="session")
async def idem_catalog(wpool: asyncpg.Pool, sim: SimProcess, wsettings: Settings) -> dict[str, int]:
    """Like `catalog`, bought from the same simulator through a provider marked as honouring request_id."""
    return await make_provider_services(wpool, url=sim.api_url, key=wsettings.sim_key, idempotent=True)


@pytest.fixture(scope="session")
async def placer(wpool: asyncpg.Pool, wsettings: Settings) -> AsyncIterator[Placer]:
    placer = Placer(wpool, wsettings)
    await placer.start()
    yield placer
    await placer.close()


@pytest.fixture
async def ledger_clean(wpool: asyncpg.Pool) -> AsyncIterator[None]:
    """Every money-moving test ends with the ledger summing to every balance."""
    yield
    async with wpool.acquire() as conn:
        assert await ledger_mismatches(conn) == []
