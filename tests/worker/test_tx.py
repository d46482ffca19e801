"""The worker's transaction retry against real Postgres aborts: a deadlock and a serialization failure are run
again from the start, each retry logged; after the last attempt the abort itself is raised."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import asyncpg
import pytest
import structlog

from shared.db.types import Conn
from shared.worker.tx import in_transaction


@pytest.fixture
async def table(pool: asyncpg.Pool) -> AsyncIterator[str]:
    name = f"tx_retry_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, n int NOT NULL)")
    await pool.execute(f"INSERT INTO {name} VALUES (1, 0), (2, 0)")
    yield name
    await pool.execute(f"DROP TABLE {name}")


def _retries(logs: list[MutableMapping[str, Any]]) -> list[tuple[object, object]]:
    return [(e["reason"], e["attempt"]) for e in logs if e["event"] == "transaction_retried"]


async def test_a_deadlock_victim_is_run_again_and_both_transactions_commit(pool: asyncpg.Pool, table: str) -> None:
    both_hold_their_first_row = asyncio.Barrier(2)
    calls = {"ab": 0, "ba": 0}

    def locking(first: int, second: int, name: str) -> Callable[[Conn], Awaitable[None]]:
        async def work(conn: Conn) -> None:
            calls[name] += 1
            await conn.execute("SET LOCAL deadlock_timeout = '20ms'")
            await conn.execute(f"UPDATE {table} SET n = n + 1 WHERE id = $1", first)
            if calls[name] == 1:
                await both_hold_their_first_row.wait()
            await conn.execute(f"UPDATE {table} SET n = n + 1 WHERE id = $1", second)

        return work

    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(
            asyncio.gather(in_transaction(pool, locking(1, 2, "ab")), in_transaction(pool, locking(2, 1, "ba"))),
            timeout=10,
        )

    assert sorted(calls.values()) == [1, 2]  # Postgres aborted one of them once; it ran again and committed
    assert _retries(logs) == [("DeadlockDetectedError", 1)]
    assert await pool.fetch(f"SELECT id, n FROM {table} ORDER BY id") == [(1, 2), (2, 2)]


async def _conflicting(pool: asyncpg.Pool, table: str, conflicts: int, runs: list[int]) -> int:
    """A repeatable-read transaction whose row another connection changes under it in its first `conflicts` runs
    (3 attempts at most); each run is appended to `runs`."""

    async def work(conn: Conn) -> int:
        runs.append(len(runs) + 1)
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        seen: int = await conn.fetchval(f"SELECT n FROM {table} WHERE id = 1")  # the snapshot is taken here
        if len(runs) <= conflicts:
            await pool.execute(f"UPDATE {table} SET n = n + 100 WHERE id = 1")  # another connection, committed
        await conn.execute(f"UPDATE {table} SET n = $1 WHERE id = 1", seen + 1)
        return seen + 1

    return await in_transaction(pool, work, attempts=3)


async def test_a_serialization_failure_is_run_again_on_a_fresh_snapshot(pool: asyncpg.Pool, table: str) -> None:
    runs: list[int] = []
    with structlog.testing.capture_logs() as logs:
        written = await _conflicting(pool, table, 2, runs)

    # Runs 1 and 2 were aborted; run 3 saw both concurrent updates and wrote on top of them.
    assert runs == [1, 2, 3]
    assert written == 201
    assert _retries(logs) == [("SerializationError", 1), ("SerializationError", 2)]
    assert await pool.fetchval(f"SELECT n FROM {table} WHERE id = 1") == 201


async def test_it_gives_up_after_the_last_attempt_with_the_abort_itself(pool: asyncpg.Pool, table: str) -> None:
    runs: list[int] = []
    with structlog.testing.capture_logs() as logs, pytest.raises(asyncpg.SerializationError):
        await _conflicting(pool, table, 3, runs)

    # Three runs, two retries logged; the third abort is raised, nothing of ours committed.
    assert runs == [1, 2, 3]
    assert _retries(logs) == [("SerializationError", 1), ("SerializationError", 2)]
    assert await pool.fetchval(f"SELECT n FROM {table} WHERE id = 1") == 300


async def test_other_errors_are_not_retried(pool: asyncpg.Pool, table: str) -> None:
    runs = 0

    async def work(conn: Conn) -> None:
        nonlocal runs
        runs += 1
        await conn.execute(f"INSERT INTO {table} VALUES (1, 0)")

    with structlog.testing.capture_logs() as logs, pytest.raises(asyncpg.UniqueViolationError):
        await in_transaction(pool, work)
    assert runs == 1
    assert _retries(logs) == []
