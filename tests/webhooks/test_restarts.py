"""A real `python -m services.webhooks` process against a PRIVATE Postgres that restarts under it: deliveries
placed after the restart arrive within seconds and the process stays (truly) ready; events published while it
is down (longer than the delivery limit's retries last) are all delivered once it is back, none dead-lettered;
a Postgres that freezes (stops answering without closing anything) makes `/readyz` name the loop stuck on it,
until it thaws."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from shared.db.pool import create_pool
from shared.messaging import topology
from shared.settings import Settings
from tests.support.factories import make_account
from tests.support.isolation import delete_amqp_names, migrated_database
from tests.support.messaging import publish_event, queue_depth
from tests.support.private_services import PrivatePostgres, private_postgres
from tests.support.processes import ManagedProcess, free_port, settings_env
from tests.support.webhooks import Receiver, emit, register, wait_until
from tests.webhooks.conftest import SECRET_KEY

__all__ = ["private_postgres"]


@pytest.fixture
async def private_pool(private_postgres: PrivatePostgres, wh_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    url = private_postgres.database_url("panelflow")
    await migrated_database(url)
    pool = await create_pool(wh_settings.model_copy(update={"database_url": url, "db_pool_min": 0}))
    yield pool
    await pool.close()


async def _event(pool: asyncpg.Pool, account_id: int) -> str:
    """An event as the consumer hands it over: its delivery is due at once (the broker path is not under test)."""
    return str(await emit(pool, account_id=account_id))


async def _ready(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
        return resp.status, await resp.json()


async def test_the_dispatcher_delivers_again_after_a_postgres_restart(
    private_postgres: PrivatePostgres,
    private_pool: asyncpg.Pool,
    wh_settings: Settings,
    receiver: Receiver,
    logs_dir: Path,
) -> None:
    settings = wh_settings.model_copy(
        update={
            "database_url": private_postgres.database_url("panelflow"),
            "amqp_prefix": f"{wh_settings.amqp_prefix}pg{uuid.uuid4().hex[:4]}",
        }
    )
    account = await make_account(private_pool)
    await register(private_pool, settings, account_id=account, url=receiver.url())
    ops_port = free_port()
    env = settings_env(settings, webhook_secret_key=SECRET_KEY, metrics_port_webhooks=ops_port)
    proc = ManagedProcess("services.webhooks", env, logs_dir / f"webhooks-pg-restart-{uuid.uuid4().hex[:6]}.log")
    proc.start()
    try:
        await proc.wait_http(f"http://127.0.0.1:{ops_port}/readyz", timeout=30)
        before = await _event(private_pool, account)
        await wait_until(lambda: before in receiver.ids(), timeout=10)

        await private_postgres.stop(mode="fast")  # a routine restart: failover, minor upgrade
        await private_postgres.start()

        after = await _event(private_pool, account)
        await wait_until(lambda: after in receiver.ids(), timeout=10)
        assert proc.alive()

        async def ready() -> bool:
            status, _ = await _ready(f"http://127.0.0.1:{ops_port}/readyz")
            return status == 200

        await wait_until(ready, timeout=10, interval=0.2)
    finally:
        proc.stop(timeout=10)
    assert '"loop_crashed"' not in proc.log_text(), proc.log_text()[-3000:]


async def test_events_published_while_postgres_is_down_are_all_delivered_and_none_dead_lettered(
    private_postgres: PrivatePostgres,
    private_pool: asyncpg.Pool,
    wh_settings: Settings,
    receiver: Receiver,
    logs_dir: Path,
) -> None:
    settings = wh_settings.model_copy(
        update={
            "database_url": private_postgres.database_url("panelflow"),
            "amqp_prefix": f"{wh_settings.amqp_prefix}pgdown{uuid.uuid4().hex[:4]}",
            "amqp_delivery_limit": 5,
            "consumer_retry_max_s": 2.0,
        }
    )
    account = await make_account(private_pool)
    await register(private_pool, settings, account_id=account, url=receiver.url())
    ops_port = free_port()
    env = settings_env(settings, webhook_secret_key=SECRET_KEY, metrics_port_webhooks=ops_port)
    proc = ManagedProcess("services.webhooks", env, logs_dir / f"webhooks-pg-down-{uuid.uuid4().hex[:6]}.log")
    proc.start()

    async def published() -> str:
        payload = {"account_id": account, "order": 1, "status": "In progress", "charge": "1.00",
                   "start_count": "0", "remains": "10", "currency": "USD"}  # fmt: skip
        return str(await publish_event(settings, "order.status_changed", payload))

    try:
        await proc.wait_http(f"http://127.0.0.1:{ops_port}/readyz", timeout=30)
        before = await published()
        await wait_until(lambda: before in receiver.ids(), timeout=10)

        down_at = time.monotonic()
        await private_postgres.stop(mode="immediate")  # a crash, down longer than 5 deliveries' pauses last
        during = [await published() for _ in range(3)]
        await asyncio.sleep(max(0.0, 11.0 - (time.monotonic() - down_at)))
        await private_postgres.start()

        await wait_until(lambda: set(during) <= set(receiver.ids()), timeout=30)
        assert proc.alive()
        dead_letters = topology.dead_letter_queue_name(settings, topology.WEBHOOKS_QUEUE)
        assert await queue_depth(settings, dead_letters) == 0
    finally:
        proc.stop(timeout=10)
        await delete_amqp_names(settings)
    assert '"message_handler_waiting_for_database"' in proc.log_text()


def _postgres_pids(pg: PrivatePostgres) -> list[int]:
    """The postmaster of the private cluster and its children (backends, background workers)."""
    postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            children.append(int(stat.parent.name))
    return [postmaster, *children]


async def test_a_loop_stuck_on_a_frozen_database_makes_readiness_fail_naming_it(
    private_postgres: PrivatePostgres,
    private_pool: asyncpg.Pool,
    wh_settings: Settings,
    logs_dir: Path,
) -> None:
    settings = wh_settings.model_copy(
        update={
            "database_url": private_postgres.database_url("panelflow"),
            "amqp_prefix": f"{wh_settings.amqp_prefix}fz{uuid.uuid4().hex[:4]}",
            "loop_stall_s": 2.0,
        }
    )
    ops_port = free_port()
    env = settings_env(settings, webhook_secret_key=SECRET_KEY, metrics_port_webhooks=ops_port)
    proc = ManagedProcess("services.webhooks", env, logs_dir / f"webhooks-frozen-{uuid.uuid4().hex[:6]}.log")
    proc.start()
    readyz = f"http://127.0.0.1:{ops_port}/readyz"
    frozen: list[int] = []
    try:
        await proc.wait_http(readyz, timeout=30)
        # The server stops answering without closing anything (a frozen VM, a partition): the claim's query
        # waits for ever on its held connection.
        frozen = _postgres_pids(private_postgres)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)

        async def stalled() -> bool:
            status, body = await _ready(readyz)
            return status == 503 and "webhook-claim" in str(body)

        await wait_until(stalled, timeout=15, interval=0.2)
        _, body = await _ready(readyz)
        assert "loops not making progress: webhook-claim" in str(body["failed"]), body

        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        frozen = []

        async def ready() -> bool:
            status, _ = await _ready(readyz)
            return status == 200

        await wait_until(ready, timeout=15, interval=0.2)
        assert proc.alive()
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        proc.stop(timeout=10)
