"""SIGTERM drains: every request the api accepted is answered, and every answered order exists."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import aiohttp
import asyncpg

from shared.settings import Settings
from tests.api.conftest import ApiClient, Reply, ledger_clean
from tests.support.factories import make_customer, make_service
from tests.support.processes import ApiProcess


async def test_sigterm_answers_what_is_in_flight_and_loses_nothing(
    settings: Settings, logs_dir: Path, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    service_id = await make_service(pool)
    account_id, key = await make_customer(pool, balance="1000")
    process = await ApiProcess(settings, logs_dir / "api-sigterm.log", relay_enabled=False).started()
    client = ApiClient(http, process.url)

    async def add() -> Reply | BaseException:
        try:
            return await client.call(
                key, "add", service=service_id, link="https://x.test/a", quantity=100, request_id=uuid.uuid4().hex
            )
        except (aiohttp.ClientError, ValueError) as exc:  # sent after the listener closed: nothing was taken
            return exc

    calls = [asyncio.create_task(add()) for _ in range(200)]
    # Signal once the api has answered something, while the rest are still in flight (a fixed sleep raced a
    # loaded machine's start-up).
    pending: set[asyncio.Task[Reply | BaseException]] = set(calls)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if any(isinstance(t.result(), Reply) for t in done):
            break
    assert pending, "every request finished before the signal: the test proves nothing"
    assert process.proc is not None
    process.proc.send_signal(signal.SIGTERM)
    results = await asyncio.gather(*calls)
    assert await asyncio.to_thread(process.proc.wait, 20) == 0
    answered = {r.body["order"] for r in results if isinstance(r, Reply) and r.status == 200}
    assert answered, "the signal came before any request was served: the test proves nothing"
    async with pool.acquire() as conn:
        placed = {r["id"] for r in await conn.fetch("SELECT id FROM orders WHERE account_id = $1", account_id)}
    assert placed == answered
    assert all(not isinstance(r, Reply) or r.status in (200, 503) for r in results)
    assert await ledger_clean(pool)
