"""Our failures and the database's: a sanitized 500 (stack in the log and in Sentry), 503 while Postgres is down."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from shared.db.pool import create_pool
from shared.settings import Settings
from tests.api.conftest import ApiClient, eventually
from tests.support.factories import make_customer, make_service
from tests.support.isolation import migrated_database
from tests.support.private_services import PrivatePostgres
from tests.support.processes import ApiProcess, free_port

DOWN = {"error": "Service temporarily unavailable"}


class SentryReceiver:
    """A real HTTP server standing in for Sentry's ingest endpoint; keeps every envelope it receives."""

    def __init__(self) -> None:
        self.envelopes: list[str] = []
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp undoes the Content-Encoding itself
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        self.envelopes.append(body.decode(errors="replace"))
        return web.json_response({"id": "0" * 32})

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.port}/1"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/1/envelope/", self.receive)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def sentry() -> AsyncIterator[SentryReceiver]:
    receiver = SentryReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


async def test_unexpected_error_is_a_sanitized_500_with_the_stack_in_log_and_sentry(
    settings: Settings, logs_dir: Path, http: aiohttp.ClientSession, pool: asyncpg.Pool, sentry: SentryReceiver
) -> None:
    _, key = await make_customer(pool)
    process = await ApiProcess(
        settings,
        logs_dir / "api-failpoint.log",
        failpoints="api.handler=raise",
        relay_enabled=False,
        sentry_dsn=sentry.dsn,
    ).started()
    try:
        client = ApiClient(http, process.url)
        reply = await client.call(key, "balance")
        assert (reply.status, reply.body) == (500, {"error": "Internal server error"})

        async def reported() -> bool:
            return any("failpoint api.handler" in e for e in sentry.envelopes)

        await eventually(reported, timeout=10)
        event = next(e for e in sentry.envelopes if "failpoint api.handler" in e)
        assert key not in event  # the API key is scrubbed from what leaves the machine
        log = process.log_text()
        line = next(json.loads(x) for x in log.splitlines() if '"request_failed"' in x)
        assert line["status"] == 500
        assert "Traceback" in line["exception"]
        assert "RuntimeError: failpoint api.handler" in line["exception"]
        assert key not in log
    finally:
        process.stop()


async def test_database_down_is_503_and_the_api_recovers(
    base_settings: Settings, logs_dir: Path, http: aiohttp.ClientSession
) -> None:
    async with PrivatePostgres() as pg:
        settings = base_settings.model_copy(update={"database_url": pg.database_url("panelflow")})
        await migrated_database(settings.database_url)
        pool = await create_pool(settings)
        try:
            _, key = await make_customer(pool, balance="10")
            service_id = await make_service(pool)
        finally:
            await pool.close()
        process = await ApiProcess(
            settings, logs_dir / "api-pg-down.log", relay_enabled=False, db_acquire_timeout_s=1.0
        ).started()
        try:
            client = ApiClient(http, process.url)
            assert (await client.call(key, "balance")).status == 200  # the key is cached from here on
            order = {"service": service_id, "link": "https://x.test/p", "quantity": 100}
            assert (await client.call(key, "add", request_id="before", **order)).status == 200

            await pg.stop(mode="immediate")
            for reply in (
                await client.call(key, "balance"),
                await client.call(key, "status", order=1),
                await client.call(key, "add", request_id="during", **order),
                await client.call("pf_" + "n" * 43, "balance"),  # well-formed, not cached: needs the database
            ):
                assert (reply.status, reply.body) == (503, DOWN)
            ready = await client.request("GET", "/readyz")
            assert (ready.status, ready.body["failed"]["database"]) == (503, "unavailable")
            assert (await client.request("GET", "/healthz")).status == 200  # the process itself is fine

            await pg.start()

            async def recovered() -> bool:
                return (await client.call(key, "balance")).status == 200

            await eventually(recovered, timeout=15)
            assert (await client.call(key, "add", request_id="during", **order)).status == 200
            assert (await client.request("GET", "/readyz")).status == 200
        finally:
            process.stop()
        assert '"request_failed"' not in process.log_text()  # an outage is not our bug: no 500s


async def test_api_starts_without_a_database_and_answers_503(
    base_settings: Settings, logs_dir: Path, http: aiohttp.ClientSession
) -> None:
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/panelflow"
    process = await ApiProcess(
        base_settings, logs_dir / "api-no-db.log", database_url=closed, relay_enabled=False
    ).started()
    try:
        client = ApiClient(http, process.url)
        ready = await client.request("GET", "/readyz")
        assert (ready.status, ready.body["failed"]["database"]) == (503, "unavailable")
        reply = await client.call("pf_" + "k" * 43, "services")
        assert (reply.status, reply.body) == (503, DOWN)
        await asyncio.sleep(0)  # the process stays up
        assert process.alive()
    finally:
        process.stop()
