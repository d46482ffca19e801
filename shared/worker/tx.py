"""Transactions of the worker, retried when Postgres aborts them for a deadlock or a serialization failure.

Such an abort rolled everything back, so running the whole function again is safe (it re-reads the rows).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_incrementing

from shared.db.types import Conn

log = structlog.get_logger(__name__)
T = TypeVar("T")
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# Pause before the next try: 10 ms after the first abort, 20 ms after the second, and so on.
_WAIT = wait_incrementing(start=0.01, increment=0.01)


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    log.warning("transaction_retried", reason=type(exc).__name__, attempt=state.attempt_number)


async def in_transaction(pool: asyncpg.Pool, work: Callable[[Conn], Awaitable[T]], *, attempts: int = 5) -> T:
    """`work(conn)` in a transaction, run again from the start (at most `attempts` times in all) while Postgres
    aborts it for a deadlock or a serialization failure; the last such error is raised as it is."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(_RETRYABLE),
        stop=stop_after_attempt(attempts),
        wait=_WAIT,
        before_sleep=_log_retry,
        reraise=True,
    ):
        with attempt:
            async with pool.acquire() as conn, conn.transaction():
                return await work(conn)
    raise AssertionError("unreachable")  # AsyncRetrying either returns or reraises
