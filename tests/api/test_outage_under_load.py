"""A Postgres restart under a steady stream of `add` calls to the real api (placer and relay running): every
answer is an order or a 503, never a 500; the answers given are true (every 200 is in the database, once);
orders are taken again within seconds of the restart, and the relay publishes all of them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

from shared.db.pool import create_pool
from shared.settings import Settings
from tests.api.conftest import ApiClient
from tests.support.factories import make_customer, make_service
from tests.support.isolation import delete_amqp_names, migrated_database
from tests.support.private_services import PrivatePostgres
from tests.support.processes import ApiProcess

CLIENTS = 16


async def test_a_postgres_restart_under_load_answers_503_never_500(
    base_settings: Settings, logs_dir: Path, http: aiohttp.ClientSession
) -> None:
    async with PrivatePostgres() as pg:
        settings = base_settings.model_copy(
            update={
                "database_url": pg.database_url("panelflow"),
                "amqp_prefix": f"{base_settings.amqp_prefix}ol{uuid.uuid4().hex[:4]}",
            }
        )
        await migrated_database(settings.database_url)
        pool = await create_pool(settings.model_copy(update={"db_pool_min": 0}))
        _, key = await make_customer(pool, balance="100000")
        service_id = await make_service(pool, rate="1", min_quantity=10, max_quantity=1000)
        # The relay runs (it is what makes the placer keep connections with the outbox NOTIFY skipped).
        process = await ApiProcess(settings, logs_dir / "api-pg-restart-load.log", db_acquire_timeout_s=1.0).started()
        client = ApiClient(http, process.url)
        statuses: Counter[int] = Counter()
        accepted: dict[str, int] = {}
        stop = asyncio.Event()

        async def one_client() -> None:
            while not stop.is_set():
                request_id = uuid.uuid4().hex
                try:
                    reply = await client.call(
                        key, "add", service=service_id, link="https://x.test/p", quantity=10, request_id=request_id
                    )
                except (aiohttp.ClientError, TimeoutError):
                    statuses[0] += 1
                    continue
                statuses[reply.status] += 1
                if reply.status == 200:
                    accepted[request_id] = reply.body["order"]
                elif reply.status == 503:
                    await asyncio.sleep(0.05)

        clients = [asyncio.create_task(one_client()) for _ in range(CLIENTS)]
        try:
            await asyncio.sleep(2.0)  # connections kept by the placer, busy and idle
            await pg.stop(mode="fast")  # a routine restart: the server terminates every connection
            await asyncio.sleep(1.0)  # calls meanwhile find it gone
            await pg.start()
            back = time.monotonic()
            before = len(accepted)

            async def flowing() -> bool:
                return len(accepted) > before + CLIENTS

            deadline = back + 15
            while not await flowing():
                assert time.monotonic() < deadline, f"no orders accepted after the restart: {statuses}"
                await asyncio.sleep(0.1)
            recovered_s = time.monotonic() - back
            stop.set()
            await asyncio.gather(*clients)
            # The api's relay publishes everything accepted, before and after the restart.
            deadline = time.monotonic() + 15
            while await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):
                assert time.monotonic() < deadline, "the relay did not publish after the restart"
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            await asyncio.gather(*clients, return_exceptions=True)
            process.stop()
            await delete_amqp_names(settings)
        try:
            assert statuses[500] == 0, (statuses, process.log_text()[-4000:])
            assert set(statuses) <= {200, 503}, statuses
            assert '"request_failed"' not in process.log_text()
            assert recovered_s < 10, recovered_s
            async with pool.acquire() as db:
                rows = await db.fetch("SELECT request_id, id FROM orders")
            stored = {r["request_id"]: r["id"] for r in rows}
            assert {rid: stored.get(rid) for rid in accepted} == accepted  # every 200 is a stored order
        finally:
            await pool.close()
