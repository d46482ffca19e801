"""The placer's database connections: kept between batches, and a batch re-run on another when one was lost.

A batch in flight takes a kept connection (or acquires one from the pool), so placing costs no acquire, reset
and release per batch; the placer holds as many of the pool's connections as it has had batches in flight at
once (at most `placement_concurrency`) while it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from shared.db import placement as sql
from shared.db.types import Conn
from shared.errors import DependencyDown

log = structlog.get_logger(__name__)

X = TypeVar("X")

# Waiting longer than this for a connection means the database is in trouble: answer 503, don't queue up.
ACQUIRE_TIMEOUT_S = 5.0
# The database is unreachable (or refusing us): the request is safe to retry, so it becomes a 503.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)
# A connection found dead when taken from the pool is replaced at most this often in all.
_ACQUIRE_ATTEMPTS = 2
# A batch whose connection turns out dead is retried on another connection at most this often in all.
_LOST_CONNECTION_ATTEMPTS = 3


class KeptConnections:
    def __init__(self, pool: asyncpg.Pool, *, skip_outbox_notify: bool) -> None:
        """`skip_outbox_notify`: the connections skip the outbox insert trigger's NOTIFY (a relay next door is
        woken by the placer itself; see `Placer`)."""
        self._pool = pool
        self._skip_notify = skip_outbox_notify
        self._idle: list[PoolConnectionProxy] = []

    async def run(self, work: Callable[[Conn], Awaitable[X]], *, size: int) -> X:
        """`work(conn)` on a kept connection, again on another if that one turns out lost.

        Re-running is safe for placement: what a lost statement committed comes back as the original orders.
        DependencyDown when the database is unreachable (`size`, the batch's, is logged with it).
        """
        for attempt in range(1, _LOST_CONNECTION_ATTEMPTS + 1):
            try:
                conn = self._idle.pop() if self._idle else await self._acquire()
                if not _usable(conn):  # lost while idle (e.g. a database restart)
                    await self._discard(conn)
                    conn = await self._acquire()
            except CONNECTION_ERRORS as exc:
                log.warning("placement_database_down", error=repr(exc), size=size)
                raise DependencyDown() from exc
            try:
                try:
                    result = await work(conn)
                except (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError) as exc:
                    # A connection whose server went away while it was idle can fail this way (e.g. "another
                    # operation is in progress") before asyncpg notices the loss: it is broken either way.
                    if _usable(conn) and isinstance(exc, asyncpg.InterfaceError):
                        raise
                    raise ConnectionError("the database connection was lost") from exc
            except CONNECTION_ERRORS as exc:
                await self._discard(conn)
                # Kept or pooled connections may have died while idle (a database restart) before asyncpg
                # noticed: try again on another. While the database is really down, acquiring fails at once.
                if attempt < _LOST_CONNECTION_ATTEMPTS:
                    continue
                log.warning("placement_database_down", error=repr(exc), size=size)
                raise DependencyDown() from exc
            except BaseException:
                await self._discard(conn)
                raise
            self._idle.append(conn)
            return result
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Give every kept connection back to the pool (call once no batch is in flight)."""
        while self._idle:
            conn = self._idle.pop()
            if _usable(conn):
                await self._pool.release(conn)
            else:
                await self._discard(conn)

    async def _acquire(self) -> PoolConnectionProxy:
        """A pooled connection for one batch in flight (set up to skip the outbox NOTIFY when asked). One the
        server dropped while it idled in the pool is replaced once; ConnectionError after that."""
        for attempt in range(1, _ACQUIRE_ATTEMPTS + 1):
            conn: PoolConnectionProxy = await self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S)
            if not self._skip_notify:
                return conn
            try:
                # Session-wide until the pool resets the connection (RESET ALL) when the placer gives it back.
                await conn.execute(sql.SKIP_OUTBOX_NOTIFY)
            except (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError) as exc:
                # A database restart terminates idle pooled connections: asyncpg may hand one out after reading
                # the server's FATAL but before seeing the socket close ("cannot switch to state 15; another
                # operation (2) is in progress": 2 is the state of consuming that error). It is broken, not busy.
                await self._discard(conn)
                if attempt == _ACQUIRE_ATTEMPTS:
                    raise ConnectionError("the database connection was lost") from exc
            except BaseException:
                await self._discard(conn)
                raise
            else:
                return conn
        raise AssertionError("unreachable")

    async def _discard(self, conn: PoolConnectionProxy) -> None:
        # Terminating hands the connection back to the pool (which replaces it); a detached proxy is back already.
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()
        with contextlib.suppress(Exception):
            await self._pool.release(conn)


def _usable(conn: PoolConnectionProxy) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # the proxy was detached: its connection went back to the pool on loss
        return False
