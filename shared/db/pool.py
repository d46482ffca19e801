"""The asyncpg pool every process uses, and the database-creation helper used by set-up and tests."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.settings import Settings

# What a loop using the database expects while it is down or restarting: server errors, a connection lost or
# closed under it (asyncpg's InterfaceError family, e.g. ConnectionDoesNotExistError), refused, timed out.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)

# The part of DATABASE_ERRORS that means the database cannot be reached or lost the connection (down, restarting,
# full), as opposed to a statement it refused (a constraint, a syntax error: a bug or a bad message, not an
# outage). Waiting and trying again is the cure for these only.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSONB in and out as Python objects; Decimal stays Decimal (asyncpg's NUMERIC codec).
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(settings: Settings) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        statement_cache_size=settings.db_statement_cache_size,
        init=_init_connection,
    )
    assert pool is not None
    return pool


class HeldConnection:
    """A pooled connection kept across the uses of one serial user (a loop writing one batch at a time):
    giving it back after every use costs a reset round trip (asyncpg's `RESET ALL` & co.). After an error it is
    given back (reset, or closed when broken) and another one is taken on the next use; so is one that was lost
    while held (a database restart closes it, and asyncpg detaches it from its proxy)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._conn: PoolConnectionProxy | None = None

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[PoolConnectionProxy]:
        conn = self._conn
        if conn is not None and not usable(conn):
            self._conn = None
            with contextlib.suppress(Exception):
                await self._pool.release(conn)
            conn = None
        if conn is None:
            conn = self._conn = await self._pool.acquire()
        try:
            yield conn
        except BaseException:
            self._conn = None
            await self._pool.release(conn)
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool.release(conn)


def usable(conn: PoolConnectionProxy) -> bool:
    """Whether a held pooled connection can still be used: not closed, not detached from its proxy."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # detached: the pool took the connection back when it was lost
        return False


async def connect(settings: Settings) -> asyncpg.Connection:
    conn = await asyncpg.connect(settings.database_url, statement_cache_size=settings.db_statement_cache_size)
    await _init_connection(conn)
    return conn


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


async def ensure_database(url: str) -> bool:
    """Create the database named in `url` when it does not exist. Returns True when it was created."""
    name = database_name(url)
    admin = await asyncpg.connect(with_database(url, "postgres"))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # Another process (a second `panelflow migrate`) created it between our check and our CREATE.
            return False
        return True
    finally:
        await admin.close()


async def drop_database(url: str) -> None:
    name = database_name(url)
    admin = await asyncpg.connect(with_database(url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
