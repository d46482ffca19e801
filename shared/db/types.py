"""The connection type every SQL function takes: a bare connection or one borrowed from the pool; and how a
task that works in batches gets its connection for each (`pool.acquire`, or `one_connection` for the CLI's)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy

Acquire: TypeAlias = Callable[[], AbstractAsyncContextManager[Conn]]


def one_connection(conn: Conn) -> Acquire:
    """Every batch on this one connection."""

    @contextlib.asynccontextmanager
    async def acquire() -> AsyncIterator[Conn]:
        yield conn

    return acquire
