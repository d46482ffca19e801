"""The operations server and the samplers against the real Postgres and RabbitMQ (and unreachable ones)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import aiohttp
import asyncpg
import pytest
import structlog
import structlog.testing
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared.db import outbox
from shared.db.readiness import database_check
from shared.domain.events import Event, EventType
from shared.kit.ops_server import OpsServer
from shared.kit.sampling import Sampler, sample_outbox, sample_webhooks, sample_worker
from shared.messaging import topology
from shared.messaging.connection import connect as connect_amqp
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import Envelope
from shared.messaging.queue_depth import QueueDepthSampler
from shared.messaging.readiness import consumer_check
from shared.observability import metrics
from shared.settings import Settings
from tests.support.isolation import delete_amqp_names
from tests.support.processes import free_port


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
async def ops_settings(settings: Settings) -> AsyncIterator[Settings]:
    # A prefix of its own: the depth sampler must see only this test's messages.
    own = settings.model_copy(update={"amqp_prefix": f"{settings.amqp_prefix}o{uuid.uuid4().hex[:6]}"})
    yield own
    await delete_amqp_names(own)


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def _nothing(_envelope: Envelope) -> None:
    return None


async def test_readiness_follows_database_and_broker_liveness_does_not(ops_settings: Settings, pool) -> None:
    dead_port = free_port()
    dead_pool = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{dead_port}/x", min_size=0)
    dead_consumer = Consumer(
        ops_settings.model_copy(update={"amqp_url": f"amqp://guest:guest@127.0.0.1:{dead_port}/"}),
        topology.WORKER_QUEUE,
        _nothing,
    )
    live_consumer = Consumer(ops_settings, topology.WORKER_QUEUE, _nothing)
    await dead_consumer.start()
    await live_consumer.start()
    await live_consumer.wait_consuming(15)
    down = OpsServer(
        "127.0.0.1", free_port(), {"database": database_check(dead_pool), "broker": consumer_check(dead_consumer)}
    )
    up = OpsServer(
        "127.0.0.1", free_port(), {"database": database_check(pool), "broker": consumer_check(live_consumer)}
    )
    await down.start()
    await up.start()
    try:
        status, body = await get(f"http://127.0.0.1:{down.port}/readyz")
        assert status == 503
        assert '"database"' in body
        assert '"broker"' in body
        assert (await get(f"http://127.0.0.1:{down.port}/healthz"))[0] == 200
        assert (await get(f"http://127.0.0.1:{up.port}/readyz")) == (200, '{"status": "ok"}')
        assert (await get(f"http://127.0.0.1:{up.port}/healthz"))[0] == 200
        # The broker goes away under a running consumer: ready no more, still alive.
        await live_consumer.stop(timeout=1)
        assert (await get(f"http://127.0.0.1:{up.port}/readyz"))[0] == 503
        assert (await get(f"http://127.0.0.1:{up.port}/healthz"))[0] == 200
        status, text = await get(f"http://127.0.0.1:{up.port}/metrics")
        assert status == 200
        assert "panelflow_api_requests_total" in text
    finally:
        await down.stop()
        await up.stop()
        await dead_consumer.stop(timeout=1)
        await dead_pool.close()


async def test_a_taken_port_leaves_the_process_running_without_the_server() -> None:
    port = free_port()
    first = OpsServer("127.0.0.1", port, {})
    second = OpsServer("127.0.0.1", port, {})
    await first.start()
    try:
        await second.start()  # must not raise
        assert (await get(f"http://127.0.0.1:{port}/healthz"))[0] == 200
    finally:
        await second.stop()
        await first.stop()


async def test_samplers_read_backlogs_from_the_database(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        async with conn.transaction():
            event = Event(EventType.BALANCE_LOW, {"account_id": 0})
            await outbox.add_event(conn, event)
            await conn.execute("UPDATE outbox SET created_at = now() - interval '90 seconds' WHERE id = $1", event.id)
    sampler = Sampler(pool, [sample_outbox, sample_worker, sample_webhooks], interval_s=60)
    try:
        await sampler.sample_once()
        assert metrics.OUTBOX_BACKLOG._value.get() == before + 1
        assert metrics.OUTBOX_OLDEST_AGE._value.get() >= 89
        async with pool.acquire() as conn:
            parked = await conn.fetchval("SELECT count(*) FROM orders WHERE status = 'unknown'")
        assert metrics.PARKED_ORDERS._value.get() == parked
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM outbox WHERE id = $1", event.id)
    await sampler.sample_once()
    assert metrics.OUTBOX_BACKLOG._value.get() == before


async def test_queue_depth_sampler_counts_ready_and_dead_lettered_messages(ops_settings: Settings) -> None:
    connection = await connect_amqp(ops_settings.amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        exchange = await topology.declare(channel, ops_settings)
        for _ in range(3):
            await exchange.publish(aio_pika.Message(b"{}"), routing_key=str(EventType.ORDER_PLACED))
        dlq = topology.dead_letter_queue_name(ops_settings, topology.WORKER_QUEUE)
        await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=dlq)
        await asyncio.sleep(0.3)
    sampler = QueueDepthSampler(ops_settings, interval_s=60)
    await sampler.sample_once()
    await sampler.stop()
    values = scrape(generate_latest(REGISTRY).decode())
    assert values[("panelflow_queue_messages", (("queue", "worker.orders"),))] == 3
    assert values[("panelflow_dlq_messages", (("queue", "worker.orders"),))] == 1
    assert values[("panelflow_dlq_messages", (("queue", "webhooks.events"),))] == 0


async def test_queue_depth_sampler_counts_queues_not_declared_yet_as_empty(ops_settings: Settings) -> None:
    # A fresh broker: the sampler may run before any consumer declared its queue (the first `make run`).
    fresh = ops_settings.model_copy(update={"amqp_prefix": f"{ops_settings.amqp_prefix}fresh{uuid.uuid4().hex[:6]}"})
    metrics.QUEUE_MESSAGES.labels(queue="worker.orders").set(99)
    sampler = QueueDepthSampler(fresh, interval_s=60)
    with structlog.testing.capture_logs() as logged:
        await sampler.sample_once()
        await sampler.stop()
    values = scrape(generate_latest(REGISTRY).decode())
    assert values[("panelflow_queue_messages", (("queue", "worker.orders"),))] == 0
    assert values[("panelflow_dlq_messages", (("queue", "webhooks.events"),))] == 0
    assert not [e for e in logged if e["log_level"] == "warning"], logged


async def test_the_api_serves_metrics_on_its_ops_port_only(api) -> None:
    status, text = await get(f"{api.url}/metrics")
    assert status == 404, text  # the public port is the internet's
    assert "panelflow_" not in text
    status, text = await get(api.metrics_url)
    assert status == 200
    assert 'panelflow_build_info{process="api"' in text
    for base in (api.url, f"http://127.0.0.1:{api.ops_port}"):
        for path in ("/healthz", "/readyz"):
            status, body = await get(base + path)
            assert status == 200, (base, path, body)
