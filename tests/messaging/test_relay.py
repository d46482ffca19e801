"""The outbox relay against the real Postgres and RabbitMQ: publish, mark, wake-ups, sharing, refusals."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter

import aio_pika
import asyncpg

from shared.db.pool import create_pool
from shared.messaging.relay import OutboxRelay
from shared.settings import Settings
from tests.support.messaging import Observer, eventually, insert_events, unpublished


async def _published_at(pool: asyncpg.Pool, ids: list[uuid.UUID]) -> list[object]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT published_at FROM outbox WHERE id = ANY($1::uuid[])", ids)
    return [r["published_at"] for r in rows]


async def test_relay_publishes_rows_as_persistent_messages_and_marks_them(
    msettings: Settings, messaging_pool: asyncpg.Pool
) -> None:
    events = await insert_events(messaging_pool, 3)
    relay = OutboxRelay(msettings, messaging_pool)
    async with Observer(msettings) as observer:
        await relay.start()
        try:
            messages = await observer.wait_for(3)
            await eventually(lambda: _none_unpublished(messaging_pool))
        finally:
            await relay.stop()

    by_id = {m.message_id: m for m in messages}
    assert set(by_id) == {str(e.id) for e in events}
    for event in events:
        message = by_id[str(event.id)]
        assert message.correlation_id == event.correlation_id
        assert message.headers["correlation_id"] == event.correlation_id
        assert message.type == "order.placed"
        assert message.routing_key == "order.placed"
        assert message.content_type == "application/json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert json.loads(message.body) == event.payload
    assert all(at is not None for at in await _published_at(messaging_pool, [e.id for e in events]))
    assert relay.published_total == 3


async def _none_unpublished(pool: asyncpg.Pool) -> bool:
    return await unpublished(pool) == 0


async def test_notify_wakes_the_relay_long_before_the_next_poll(
    msettings: Settings, messaging_pool: asyncpg.Pool
) -> None:
    settings = msettings.model_copy(update={"relay_poll_s": 60.0})
    relay = OutboxRelay(settings, messaging_pool)
    async with Observer(settings) as observer:
        await relay.start()
        try:
            await asyncio.wait_for(relay.listening.wait(), 10)
            await asyncio.sleep(0.2)  # the first (empty) batch is done: the relay now sleeps on its 60 s poll
            started = time.monotonic()
            await insert_events(messaging_pool, 1)
            await observer.wait_for(1, timeout=5)
            assert time.monotonic() - started < 2.0
        finally:
            await relay.stop()


async def test_polling_publishes_rows_whose_notify_was_missed(
    msettings: Settings, messaging_pool: asyncpg.Pool
) -> None:
    settings = msettings.model_copy(update={"relay_poll_s": 0.3})
    relay = OutboxRelay(settings, messaging_pool)
    async with Observer(settings) as observer:
        await relay.start()
        try:
            await asyncio.wait_for(relay.listening.wait(), 10)
            await asyncio.sleep(0.2)
            # Triggers do not fire in replica mode: the row is committed without a NOTIFY.
            event_id = uuid.uuid4()
            async with messaging_pool.acquire() as conn, conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute(
                    "INSERT INTO outbox (id, event_type, payload) VALUES ($1, 'order.placed', '{}')", event_id
                )
            await observer.wait_for(1, timeout=5)
            assert observer.ids() == [str(event_id)]
            assert relay.listening.is_set()  # it was listening all along: the poll found the row
        finally:
            await relay.stop()


async def test_two_relays_share_the_outbox_and_lose_nothing(msettings: Settings, messaging_pool: asyncpg.Pool) -> None:
    settings = msettings.model_copy(update={"relay_batch": 10})
    events = await insert_events(messaging_pool, 600)
    second_pool = await create_pool(settings)
    relays = [OutboxRelay(settings, messaging_pool), OutboxRelay(settings, second_pool)]
    try:
        async with Observer(settings) as observer:
            await asyncio.gather(*(relay.start() for relay in relays))
            try:
                await observer.wait_for(600, timeout=30)
                await eventually(lambda: _none_unpublished(messaging_pool))
            finally:
                await asyncio.gather(*(relay.stop() for relay in relays))
            await asyncio.sleep(0.2)
            counts = Counter(observer.ids())
    finally:
        await second_pool.close()

    assert set(counts) == {str(e.id) for e in events}  # none lost
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates == 0  # SKIP LOCKED + mark in the claiming transaction: no double publication
    assert all(relay.published_total > 0 for relay in relays), [r.published_total for r in relays]
    assert sum(relay.published_total for relay in relays) == 600


async def test_unroutable_message_is_a_failure_and_does_not_block_the_rest(
    msettings: Settings, messaging_pool: asyncpg.Pool
) -> None:
    # No observer here: an observer bound to '#' would make every message routable.
    relay = OutboxRelay(msettings, messaging_pool)
    nowhere = await insert_events(messaging_pool, 1, event_type="nobody.listens")
    routable = await insert_events(messaging_pool, 2, event_type="order.placed")
    await relay.start()
    try:

        async def routable_published() -> bool:
            return all(at is not None for at in await _published_at(messaging_pool, [e.id for e in routable]))

        await eventually(routable_published)

        async def failed_once() -> bool:
            async with messaging_pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT attempts FROM outbox WHERE id = $1", nowhere[0].id))

        await eventually(failed_once)
        await asyncio.sleep(1.0)
        async with messaging_pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM outbox WHERE id = $1", nowhere[0].id)
    finally:
        await relay.stop()

    assert row is not None
    assert row["published_at"] is None
    assert "PublishError" in row["last_error"]
    # Retried, but with a growing pause, not in a tight loop (0.5 s, 1 s, ...).
    assert 1 <= row["attempts"] <= 3
    assert relay.failed_total == row["attempts"]
