"""Every process against every dependency: the whole stack (api with its relay, worker, webhooks, provider
simulator) on a PRIVATE Postgres, RabbitMQ and Redis; each dependency is restarted in turn, and after each
restart a new order placed through the api must be bought, completed and announced to a webhook receiver
within seconds, with every process still running, ready, and no loop having crashed.

(Redis is used by the api alone, for shared rate limits; the worker and webhooks do not talk to it.)
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from pydantic import SecretStr

from shared.db.pool import create_pool
from shared.settings import Settings
from tests.support.factories import make_customer
from tests.support.isolation import delete_amqp_names, migrated_database
from tests.support.private_services import PrivatePostgres, PrivateRabbit, PrivateRedis
from tests.support.processes import ApiProcess, ManagedProcess, free_port, settings_env
from tests.support.webhooks import RECEIVER_NETWORK, Receiver, register, wait_until
from tests.support.worker import SimProcess, WorkerProcess, make_provider_services
from tests.webhooks.conftest import SECRET_KEY

# New work must flow end to end this soon after a dependency is back (the simulator completes in ~1 s).
FLOW_S = 30.0


class Stack:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, logs_dir: Path, receiver: Receiver) -> None:
        self.settings = settings
        self.pool = pool
        self.receiver = receiver
        run = uuid.uuid4().hex[:6]
        self.worker_port, self.webhooks_port = free_port(), free_port()
        self.sim = SimProcess(settings, logs_dir / f"deps-sim-{run}.log", metrics_port_sim=free_port())
        self.worker = WorkerProcess(settings, logs_dir / f"deps-worker-{run}.log", metrics_port_worker=self.worker_port)
        env = settings_env(settings, metrics_port_webhooks=self.webhooks_port, webhook_secret_key=SECRET_KEY)
        self.webhooks = ManagedProcess("services.webhooks", env, logs_dir / f"deps-webhooks-{run}.log")
        self.api = ApiProcess(settings, logs_dir / f"deps-api-{run}.log")
        self.key = ""
        self.service = 0

    @property
    def processes(self) -> list[ManagedProcess]:
        return [self.sim, self.worker, self.webhooks, self.api]

    async def start(self) -> None:
        await self.sim.started()
        ids = await make_provider_services(self.pool, url=self.sim.api_url, key=self.settings.sim_key)
        self.service = ids["default"]
        account_id, self.key = await make_customer(self.pool, balance="100")
        await register(self.pool, self.settings, account_id=account_id, url=self.receiver.url())
        await self.worker.started()
        self.webhooks.start()
        await self.webhooks.wait_http(f"http://127.0.0.1:{self.webhooks_port}/readyz")
        await self.api.started()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=15)

    async def order_flows(self, session: aiohttp.ClientSession, label: str) -> float:
        """Place an order (retrying the same request_id while the api answers 503, as a client does) and wait for
        its order.completed webhook. Returns the seconds it took."""
        started = time.monotonic()
        request_id = f"deps-{label}-{uuid.uuid4().hex[:6]}"
        form = {"key": self.key, "action": "add", "service": str(self.service), "quantity": "100",
                "link": f"https://example.test/{label}", "request_id": request_id}  # fmt: skip
        order = None
        while order is None:
            assert time.monotonic() - started < FLOW_S, f"{label}: the api did not take the order"
            try:
                async with session.post(self.api.url + "/api/v2", data=form) as resp:
                    body = await resp.json()
                    if resp.status == 200:
                        order = body["order"]
                        break
                    assert resp.status == 503, (resp.status, body)
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)

        def completed() -> bool:
            for hit in self.receiver.hits:
                body = json.loads(hit.body)
                if body["type"] == "order.completed" and body["data"]["order"] == order:
                    return True
            return False

        try:
            await wait_until(completed, timeout=FLOW_S - (time.monotonic() - started), interval=0.1)
        except TimeoutError:
            logs = "\n".join(f"--- {p.module}\n{p.log_text()[-1500:]}" for p in self.processes)
            raise AssertionError(f"{label}: order {order} did not complete and announce in time\n{logs}") from None
        return time.monotonic() - started

    async def all_ready(self, session: aiohttp.ClientSession) -> None:
        urls = [
            f"{self.api.url}/readyz",
            f"http://127.0.0.1:{self.worker_port}/readyz",
            f"http://127.0.0.1:{self.webhooks_port}/readyz",
        ]

        async def ready() -> bool:
            for url in urls:
                try:
                    async with session.get(url) as resp:
                        if resp.status != 200:
                            return False
                except aiohttp.ClientError:
                    return False
            return True

        await wait_until(ready, timeout=20, interval=0.2)
        assert all(p.alive() for p in self.processes), [p.module for p in self.processes if not p.alive()]


@pytest.fixture
async def private_deps() -> AsyncIterator[tuple[PrivatePostgres, PrivateRabbit, PrivateRedis]]:
    async with PrivatePostgres() as pg, PrivateRabbit() as rabbit, PrivateRedis() as redis:
        yield pg, rabbit, redis


async def test_each_process_keeps_working_across_postgres_rabbitmq_and_redis_restarts(
    settings: Settings, private_deps: tuple[PrivatePostgres, PrivateRabbit, PrivateRedis], logs_dir: Path
) -> None:
    pg, rabbit, redis = private_deps
    own = settings.model_copy(
        update={
            "sim_pending_s": 0.2,
            "sim_completion_s": 1.0,
            "worker_poll_min_s": 0.3,
            "worker_poll_idle_s": 0.1,
            "webhooks_allow_http": True,
            "webhooks_allowed_networks": RECEIVER_NETWORK,
            "webhook_secret_key": SecretStr(SECRET_KEY),
            "webhook_poll_s": 0.05,
            "webhook_endpoint_rate_per_s": 0.0,
            "relay_poll_s": 0.2,
            "database_url": pg.database_url("panelflow"),
            "amqp_url": rabbit.url,
            "amqp_prefix": f"{settings.amqp_prefix}deps",
            "amqp_reconnect_max_s": 1.0,
            "redis_url": redis.url,
            "rate_limits_enabled": True,
        }
    )
    await migrated_database(own.database_url)
    pool = await create_pool(own.model_copy(update={"db_pool_min": 0}))
    receiver = await Receiver().start()
    stack = Stack(own, pool, logs_dir, receiver)
    took: dict[str, float] = {}
    try:
        await stack.start()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            took["baseline"] = await stack.order_flows(session, "baseline")

            await pg.stop(mode="fast")
            await pg.start()
            took["postgres"] = await stack.order_flows(session, "after-postgres")
            await stack.all_ready(session)

            await rabbit.stop()
            await rabbit.start()
            took["rabbitmq"] = await stack.order_flows(session, "after-rabbitmq")
            await stack.all_ready(session)

            await redis.kill()
            await redis.start()
            took["redis"] = await stack.order_flows(session, "after-redis")
            await stack.all_ready(session)
    finally:
        stack.stop()
        await receiver.stop()
        await pool.close()
        await delete_amqp_names(own)
    print("end-to-end seconds after each restart:", {k: round(v, 1) for k, v in took.items()})
    for process in stack.processes:
        assert '"loop_crashed"' not in process.log_text(), process.log_text()[-3000:]
