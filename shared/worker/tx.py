"""Transactions of the worker, retried when Postgres aborts them for a deadlock or a serialization failure.

Such an abort rolled everything back, so running the whole function again is safe (it re-reads the rows).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import structlog

from shared.db.types import Conn

log = structlog.get_logger(__name__)
T = TypeVar("T")
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


async def in_transaction(pool: asyncpg.Pool, work: Callable[[Conn], Awaitable[T]], *, attempts: int = 5) -> T:
    for attempt in range(1, attempts + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await work(conn)
        except _RETRYABLE as exc:
            if attempt == attempts:
                raise
            log.warning("transaction_retried", reason=type(exc).__name__, attempt=attempt)
            await asyncio.sleep(0.01 * attempt)
    raise AssertionError("unreachable")
