"""`api_processes=2`: two api processes share the port, place orders exactly once, and stop together."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path

import aiohttp
import asyncpg

from shared.settings import Settings
from tests.api.conftest import ApiClient, ledger_clean
from tests.support.factories import make_customer, make_service
from tests.support.messaging import eventually
from tests.support.processes import ApiProcess, pid_alive


async def _logged(log_path: Path, event: str) -> int:
    lines = (await asyncio.to_thread(log_path.read_text)).splitlines()
    return sum(1 for line in lines if line.startswith("{") and json.loads(line).get("event") == event)


async def test_two_processes_share_the_port_and_stop_together(
    settings: Settings, logs_dir: Path, pool: asyncpg.Pool
) -> None:
    service_id = await make_service(pool)
    account_id, key = await make_customer(pool, balance="1000")
    log_path = logs_dir / "api-processes.log"
    process = await ApiProcess(settings, log_path, api_processes=2).started()
    assert process.proc is not None
    try:
        # /healthz answers as soon as one child serves: wait for both, so the signal below finds both serving.
        async def both_serving() -> bool:
            return await _logged(log_path, "relay_started") >= 2

        await eventually(both_serving, timeout=30)
        request_ids = [uuid.uuid4().hex for _ in range(40)]
        # A connection per request: the kernel spreads new connections over both processes.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            client = ApiClient(http, process.url)
            replies = await asyncio.gather(
                *(
                    client.call(key, "add", service=service_id, link="https://x.test/a", quantity=100, request_id=rid)
                    for rid in request_ids + request_ids  # every request twice: one order each all the same
                )
            )
        process.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.proc.wait, 30) == 0
    finally:
        process.stop()

    assert all(r.status == 200 for r in replies), [r.body for r in replies if r.status != 200]
    ids = [r.body["order"] for r in replies]
    assert ids[:40] == ids[40:]
    async with pool.acquire() as conn:
        placed = {r["id"] for r in await conn.fetch("SELECT id FROM orders WHERE account_id = $1", account_id)}
    assert placed == set(ids)
    assert len(placed) == 40
    assert await ledger_clean(pool)
    events = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    started = [e for e in events if e.get("event") == "api_processes_started"]
    assert len(started) == 1
    assert len(started[0]["pids"]) == 2
    assert not any(pid_alive(pid) for pid in started[0]["pids"])
    assert sum(1 for e in events if e.get("event") == "relay_started") == 2
