"""Isolation of a group of tests: a migrated database and RabbitMQ names of its own, removed afterwards.

Tests that run their own relay or worker need both: two stacks sharing one outbox would publish each
other's events to the wrong exchange.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from shared.db.migrate import migrate
from shared.db.pool import database_name, drop_database, ensure_database, with_database
from shared.messaging import topology
from shared.messaging.connection import connect as connect_amqp
from shared.settings import Settings


async def migrated_database(url: str) -> str:
    """Create the database at `url` if needed and apply every migration; returns the URL."""
    await ensure_database(url)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url


@contextlib.asynccontextmanager
async def fresh_database(base_url: str, suffix: str) -> AsyncIterator[str]:
    """A migrated database named `<base>_<suffix>`, dropped on exit; yields its URL."""
    url = with_database(base_url, f"{database_name(base_url)}_{suffix}")
    await drop_database(url)  # a leftover of an interrupted run
    await migrated_database(url)
    try:
        yield url
    finally:
        await drop_database(url)


async def delete_amqp_names(settings: Settings) -> None:
    """Remove every queue and exchange of `settings.amqp_prefix` (absent ones are fine)."""
    try:
        connection = await connect_amqp(settings.amqp_url, timeout=5)
    except Exception:  # the broker is gone (a disruptive test): nothing to clean
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
