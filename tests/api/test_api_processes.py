"""`api_processes=2`: two api processes share the port, place orders exactly once, stop together, and answer
`/metrics` with their sum."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

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


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    # A connection of its own per scrape: the kernel picks the process that answers it (SO_REUSEPORT).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http, http.get(url) as resp:
        assert resp.status == 200
        return _samples(await resp.text())


BALANCE_OK = ("panelflow_api_requests_total", (("action", "balance"), ("status", "200")))


async def _balance_calls(url: str, key: str, count: int) -> set[str]:
    """`count` balance calls, a connection each; the processes that answered (generated request ids start with a
    per-process prefix)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        client = ApiClient(http, url)
        replies = await asyncio.gather(*(client.call(key, "balance") for _ in range(count)))
    assert all(r.status == 200 for r in replies), [r.body for r in replies if r.status != 200]
    return {r.headers["X-Request-ID"][:16] for r in replies}


async def test_metrics_of_two_processes_are_their_sum_and_a_killed_one_leaves_no_stale_counts(
    settings: Settings, logs_dir: Path, pool: asyncpg.Pool
) -> None:
    _, key = await make_customer(pool, balance="10")
    log_path = logs_dir / f"api-processes-metrics-{uuid.uuid4().hex[:6]}.log"
    process = ApiProcess(settings, log_path, api_processes=2)
    process.start()
    assert process.proc is not None
    try:
        await process.wait_http(process.url + "/healthz", timeout=90)  # three interpreters start (slow when busy)
        sent, answered = 0, set()

        async def both_answered() -> bool:
            nonlocal sent
            answered.update(await _balance_calls(process.url, key, 20))
            sent += 20
            return len(answered) == 2

        await eventually(both_answered, timeout=60, interval=0.2)
        # Whichever process answers a scrape reports every call (each alone answered fewer).
        for _ in range(6):
            samples = await _scrape(process.metrics_url)
            assert samples[BALANCE_OK] == sent
            # Gauges combine into one series (no per-process `pid` label); the build info is there.
            assert not [name for name, labels in samples if "pid" in dict(labels)]
            assert samples[("panelflow_ratelimit_store_up", ())] == 1
            assert samples[("panelflow_build_info", (("process", "api"), ("release", settings.release)))] == 1

        events = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        [started] = [e for e in events if e.get("event") == "api_processes_started"]
        metrics_dir = Path(started["metrics_dir"])
        assert await asyncio.to_thread(metrics_dir.is_dir)
        # One process killed: the parent stops the other and exits (an orchestrator restarts the pod) ...
        os.kill(started["pids"][0], signal.SIGKILL)
        assert await asyncio.to_thread(process.proc.wait, 30) == 1
        assert not await asyncio.to_thread(metrics_dir.exists)  # ... and leaves no counts behind
    finally:
        process.stop()

    # The restarted api counts from zero, as a single process does after a restart: no stale, no double counts.
    restarted = ApiProcess(
        settings, log_path, api_processes=2, api_port=process.port, metrics_port_api=process.ops_port
    )
    restarted.start()
    try:
        await restarted.wait_http(restarted.url + "/healthz", timeout=90)
        await _balance_calls(restarted.url, key, 10)
        for _ in range(4):
            assert (await _scrape(restarted.metrics_url))[BALANCE_OK] == 10
    finally:
        restarted.stop()
