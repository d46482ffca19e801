"""A process whose database lacks a migration its code expects is not ready: `/readyz` answers 503 naming the
schema, the log says `schema_behind`, `panelflow_schema_migrations_pending` counts what is missing; once
`panelflow migrate` ran it is ready again without a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.db.migrate import available
from shared.settings import Settings
from tests.cli.conftest import run_cli
from tests.support.isolation import delete_amqp_names, fresh_database
from tests.support.processes import ApiProcess, ManagedProcess, free_port, settings_env
from tests.support.worker import WorkerProcess
from tests.webhooks.conftest import SECRET_KEY

LATEST = available()[-1]


@pytest.fixture
async def behind(settings: Settings) -> AsyncIterator[Settings]:
    """A database one migration behind the code (the row of the latest one removed: re-applying it is safe)."""
    async with fresh_database(settings.database_url, "schemabehind") as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("DELETE FROM schema_migrations WHERE version = $1", LATEST.version)
        finally:
            await conn.close()
        yield settings.model_copy(update={"database_url": url, "relay_enabled": False})


async def _pending_metric(session: aiohttp.ClientSession, url: str) -> float:
    async with session.get(url) as resp:
        text = await resp.text()
    for family in text_string_to_metric_families(text):
        if family.name == "panelflow_schema_migrations_pending":
            return float(family.samples[0].value)
    raise AssertionError("no panelflow_schema_migrations_pending in /metrics")


async def test_api_is_not_ready_while_the_schema_is_behind(behind: Settings, logs_dir: Path) -> None:
    api = await ApiProcess(behind, logs_dir / "api-schema-behind.log").started()
    ops = api.metrics_url.removesuffix("/metrics")
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(ops + "/readyz") as resp:
                assert resp.status == 503
                body = await resp.json()
            assert f"{LATEST.version:03d}" in body["failed"]["schema"], body
            # The public port runs the same checks and names the failing one, without the why.
            async with session.get(api.url + "/readyz") as resp:
                assert (resp.status, await resp.json()) == (
                    503,
                    {"status": "unavailable", "failed": {"schema": "unavailable"}},
                )
            assert await _pending_metric(session, api.metrics_url) == 1
            assert '"schema_behind"' in api.log_text()

            assert run_cli(behind, "migrate").code == 0
            deadline = time.monotonic() + 10
            statuses: list[int] = []
            while time.monotonic() < deadline:
                async with session.get(api.url + "/readyz") as public, session.get(ops + "/readyz") as own:
                    statuses = [public.status, own.status]
                if statuses == [200, 200]:
                    break
                await asyncio.sleep(0.2)
            assert statuses == [200, 200]
            assert await _pending_metric(session, api.metrics_url) == 0
            assert '"schema_current"' in api.log_text()
    finally:
        api.stop()


async def test_worker_and_webhooks_are_not_ready_while_the_schema_is_behind(behind: Settings, logs_dir: Path) -> None:
    own = behind.model_copy(update={"amqp_prefix": f"{behind.amqp_prefix}schema"})
    worker_port, webhooks_port = free_port(), free_port()
    worker = WorkerProcess(own, logs_dir / "worker-schema-behind.log", metrics_port_worker=worker_port)
    webhooks = ManagedProcess(
        "services.webhooks",
        settings_env(own, metrics_port_webhooks=webhooks_port, webhook_secret_key=SECRET_KEY),
        logs_dir / "webhooks-schema-behind.log",
    )
    try:
        await worker.started()
        webhooks.start()
        await webhooks.wait_http(f"http://127.0.0.1:{webhooks_port}/healthz")
        async with aiohttp.ClientSession() as session:
            for process, port in ((worker, worker_port), (webhooks, webhooks_port)):
                async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    assert resp.status == 503, process.module
                    body = await resp.json()
                assert f"{LATEST.version:03d}" in body["failed"]["schema"], body
                assert await _pending_metric(session, f"http://127.0.0.1:{port}/metrics") == 1
                assert '"schema_behind"' in process.log_text()
    finally:
        worker.stop()
        webhooks.stop()
        await delete_amqp_names(own)
