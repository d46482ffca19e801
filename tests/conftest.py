"""Session-wide test stack: a fresh database and RabbitMQ names of its own, removed afterwards.

The real Postgres, RabbitMQ and Redis of the machine are used; nothing of ours is mocked.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from shared.db.migrate import migrate
from shared.db.pool import connect, create_pool, drop_database, ensure_database, with_database
from shared.settings import Settings
from tests.support.factories import PROVIDER_KEY_ENCRYPTION_KEY
from tests.support.isolation import delete_amqp_names
from tests.support.processes import ApiProcess, stop_leftovers

RUN_ID = uuid.uuid4().hex[:10]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that stop shared services run last, so a slow restart cannot disturb the others.
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


@pytest.fixture(scope="session", autouse=True)
def _no_process_outlives_the_run() -> Iterator[None]:
    yield
    stop_leftovers()


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    env_url = Settings().database_url
    return Settings(
        env="development",
        database_url=with_database(env_url, f"panelflow_test_{RUN_ID}"),
        amqp_prefix=f"test{RUN_ID}",
        rate_limits_enabled=False,
        log_format="json",
        relay_poll_s=0.5,
        # Apps built inside the test runner must not freeze its heap; a test turns it on for a started process.
        gc_threshold=0,
        provider_key_encryption_key=SecretStr(PROVIDER_KEY_ENCRYPTION_KEY),
        # Test providers (the simulator, hostile upstreams) are plain-http servers on this machine.
        upstream_allow_http=True,
        upstream_allowed_networks="127.0.0.0/8",
    )


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
async def settings(base_settings: Settings) -> AsyncIterator[Settings]:
    await ensure_database(base_settings.database_url)
    conn = await connect(base_settings)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield base_settings
    await delete_amqp_names(base_settings)
    if not os.environ.get("PANELFLOW_KEEP_TEST_DB"):
        await drop_database(base_settings.database_url)


@pytest.fixture(scope="session")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def api(settings: Settings, logs_dir: Path) -> AsyncIterator[ApiProcess]:
    """One api process for the session, rate limits lifted; tests that need limits start their own."""
    process = await ApiProcess(settings, logs_dir / "api.log").started()
    yield process
    process.stop()
