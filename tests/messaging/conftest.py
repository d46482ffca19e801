"""Fixtures of the messaging tests.

They run against a database of their own (`<session db>_msg`) so that no other relay of the session (the
api's) competes for their outbox rows, and each test gets AMQP names of its own (a fresh prefix, removed
afterwards) so that queue arguments such as the delivery limit can differ between tests.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.db.pool import create_pool
from shared.settings import Settings
from tests.support.isolation import delete_amqp_names, fresh_database
from tests.support.private_services import private_postgres, private_rabbit, private_redis

__all__ = ["private_postgres", "private_rabbit", "private_redis"]


@pytest.fixture(scope="session")
async def messaging_db(base_settings: Settings) -> AsyncIterator[str]:
    async with fresh_database(base_settings.database_url, "msg") as url:
        yield url


@pytest.fixture(scope="session")
async def messaging_pool(base_settings: Settings, messaging_db: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(base_settings.model_copy(update={"database_url": messaging_db}))
    yield pool
    await pool.close()


@pytest.fixture
async def msettings(
    base_settings: Settings, messaging_db: str, messaging_pool: asyncpg.Pool
) -> AsyncIterator[Settings]:
    """Settings of one test: the messaging database (outbox emptied) and AMQP names of its own."""
    async with messaging_pool.acquire() as conn:
        await conn.execute("TRUNCATE outbox")
    settings = base_settings.model_copy(
        update={
            "database_url": messaging_db,
            "amqp_prefix": f"{base_settings.amqp_prefix}m{uuid.uuid4().hex[:6]}",
            "relay_poll_s": 0.2,
            "amqp_reconnect_max_s": 1.0,
            "consumer_stop_timeout_s": 5.0,
            "consumer_retry_base_s": 0.02,
        }
    )
    yield settings
    await delete_amqp_names(settings)
