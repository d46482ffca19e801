"""Fixtures of the messaging tests.

They run against a database of their own (`<session db>_msg`) so that no other relay of the session (the
api's) competes for their outbox rows, and each test gets AMQP names of its own (a fresh prefix, removed
afterwards) so that queue arguments such as the delivery limit can differ between tests.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest

from shared.db.migrate import migrate
from shared.db.pool import create_pool, database_name, drop_database, ensure_database, with_database
from shared.messaging import topology
from shared.settings import Settings
from tests.support.private_services import private_postgres, private_rabbit

__all__ = ["private_postgres", "private_rabbit"]


@pytest.fixture(scope="session")
async def messaging_db(base_settings: Settings) -> AsyncIterator[str]:
    url = with_database(base_settings.database_url, database_name(base_settings.database_url) + "_msg")
    await ensure_database(url)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield url
    await drop_database(url)


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


async def delete_amqp_names(settings: Settings) -> None:
    try:
        connection = await aio_pika.connect(settings.amqp_url, timeout=5)
    except Exception:  # a private broker that is gone already: nothing to clean
        return
    async with connection:
        for name in topology.all_queue_names(settings):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
        for name in topology.all_exchange_names(settings):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(name)
