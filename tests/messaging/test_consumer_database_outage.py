"""A database outage under a real consumer (real broker, private Postgres stopped like a crash): the handler's
database errors are waited out in-process, so no delivery is used up and nothing reaches the dead-letter queue."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import asyncpg

from shared.db.pool import create_pool
from shared.messaging import topology
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import Envelope
from shared.settings import Settings
from tests.support.messaging import eventually, publish_event, queue_depth
from tests.support.private_services import PrivatePostgres

QUEUE = topology.WORKER_QUEUE
# Longer than the delivery limit's retries allow (5 deliveries, pauses capped at 2 s: well under 10 s).
OUTAGE_S = 11.0


async def test_events_published_while_the_database_is_down_are_each_handled_once_and_none_dead_lettered(
    private_postgres: PrivatePostgres, msettings: Settings
) -> None:
    settings = msettings.model_copy(
        update={"database_url": private_postgres.url, "amqp_delivery_limit": 5, "consumer_retry_max_s": 2.0}
    )
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("CREATE TABLE handled (event_id uuid PRIMARY KEY, delivery_count int NOT NULL)")
    finally:
        await conn.close()
    pool = await create_pool(settings)
    attempts: Counter[uuid.UUID] = Counter()

    async def handle(envelope: Envelope) -> None:
        # A plain insert: handling an event twice would fail on the key (and end in the DLQ).
        attempts[envelope.event_id] += 1
        async with pool.acquire() as c:
            await c.execute("INSERT INTO handled VALUES ($1, $2)", envelope.event_id, envelope.delivery_count)

    consumer = Consumer(settings, QUEUE, handle)
    await consumer.start()
    try:
        await consumer.wait_consuming(15)
        before = await publish_event(settings, "order.placed", {"order": 0})

        async def handled(count: int) -> bool:
            return consumer.handled_total >= count

        await eventually(lambda: handled(1))

        down_at = time.monotonic()
        await private_postgres.stop(mode="immediate")
        during = [await publish_event(settings, "order.placed", {"order": i}) for i in range(1, 6)]

        async def all_tried() -> bool:
            return all(attempts[event_id] >= 2 for event_id in during)

        await eventually(all_tried, timeout=OUTAGE_S)  # each failed on the database and was tried again
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        await private_postgres.start()
        await eventually(lambda: handled(6), timeout=30)
        await asyncio.sleep(0.3)  # acks flushed; a stray redelivery would show up
    finally:
        await consumer.stop()
        await pool.close()

    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT event_id, delivery_count FROM handled ORDER BY event_id")
    finally:
        await conn.close()
    assert sorted(r["event_id"] for r in rows) == sorted([before, *during])
    # Every event was handled on its first delivery: the outage used up none of the delivery limit.
    assert {r["delivery_count"] for r in rows} == {0}
    assert consumer.handled_total == 6
    assert consumer.failed_total == 0
    assert consumer.waits_total >= 5
    assert await queue_depth(settings, topology.dead_letter_queue_name(settings, QUEUE)) == 0
    assert await queue_depth(settings, topology.queue_name(settings, QUEUE)) == 0
