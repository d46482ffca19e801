"""Outages and crashes: a private broker or database stopped and started under a running relay/consumer,
and a relay process killed between the broker's confirms and the database mark."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from shared.db.pool import create_pool
from shared.messaging import topology
from shared.messaging.connection import connect as connect_amqp
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import Envelope
from shared.messaging.relay import OutboxRelay
from shared.settings import Settings
from tests.support.isolation import migrated_database
from tests.support.messaging import Observer, eventually, insert_events, publish_event, unpublished
from tests.support.private_services import PrivatePostgres, PrivateRabbit
from tests.support.processes import ManagedProcess, settings_env


async def _is_published(pool: asyncpg.Pool, event_id: uuid.UUID) -> bool:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT published_at IS NOT NULL FROM outbox WHERE id = $1", event_id) is True


async def _drain_queue(url: str, name: str) -> list[str]:
    connection = await connect_amqp(url, timeout=10)
    ids: list[str] = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        while (message := await queue.get(fail=False, timeout=5)) is not None:
            ids.append(message.message_id or "")
            await message.ack()
    return ids


async def test_rows_committed_while_the_broker_is_down_are_published_when_it_is_back(
    private_rabbit: PrivateRabbit, msettings: Settings, messaging_pool: asyncpg.Pool
) -> None:
    settings = msettings.model_copy(update={"amqp_url": private_rabbit.url})
    relay = OutboxRelay(settings, messaging_pool)
    await relay.start()
    try:
        [before] = await insert_events(messaging_pool, 1)
        await eventually(lambda: _is_published(messaging_pool, before.id))

        await private_rabbit.stop()
        [during] = await insert_events(messaging_pool, 1)
        await asyncio.sleep(1.5)  # several attempts against the dead broker
        assert not await _is_published(messaging_pool, during.id)
        assert all(not task.done() for task in relay._tasks)  # still running, retrying

        await private_rabbit.start()
        await eventually(lambda: _is_published(messaging_pool, during.id), timeout=30)
    finally:
        await relay.stop()

    # Both are in the durable quorum queue of the worker: the first survived the restart, the second came after.
    ids = await _drain_queue(private_rabbit.url, topology.queue_name(settings, topology.WORKER_QUEUE))
    assert ids == [str(before.id), str(during.id)]


async def test_relay_killed_between_publish_and_mark_loses_nothing(
    msettings: Settings, messaging_pool: asyncpg.Pool, logs_dir: Path
) -> None:
    [event] = await insert_events(messaging_pool, 1)
    log_path = logs_dir / f"relay-crash-{uuid.uuid4().hex[:6]}.log"
    async with Observer(msettings) as observer:
        doomed = ManagedProcess(
            "services.relay",
            settings_env(msettings, failpoints="relay.after_publish=kill", metrics_port_relay=0),
            log_path,
        ).start()
        try:
            await eventually(_exited(doomed), timeout=30)
        finally:
            doomed.kill()
        assert doomed.proc is not None
        assert doomed.proc.returncode == -9, doomed.log_text()[-2000:]
        await observer.wait_for(1)  # the broker confirmed it ...
        assert await unpublished(messaging_pool) == 1  # ... but the mark never committed

        survivor = ManagedProcess("services.relay", settings_env(msettings, metrics_port_relay=0), log_path).start()
        try:
            await eventually(lambda: _is_published(messaging_pool, event.id), timeout=30)
            await observer.wait_for(2)
        finally:
            assert survivor.stop() == 0, survivor.log_text()[-2000:]

    assert Counter(observer.ids()) == {str(event.id): 2}  # republished: a duplicate, never a loss
    assert '"outbox_published"' in survivor.log_text()


def _exited(process: ManagedProcess) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return not process.alive()

    return check


async def test_consumer_consumes_again_after_the_broker_crashes_and_restarts(
    private_rabbit: PrivateRabbit, msettings: Settings
) -> None:
    settings = msettings.model_copy(update={"amqp_url": private_rabbit.url})
    seen: list[Envelope] = []

    async def handler(envelope: Envelope) -> None:
        seen.append(envelope)

    consumer = Consumer(settings, topology.WORKER_QUEUE, handler)
    await consumer.start()
    try:
        await consumer.wait_consuming(15)
        await private_rabbit.kill()  # no clean connection close: the socket just dies

        async def disconnected() -> bool:
            return not consumer.consuming.is_set()

        await eventually(disconnected)
        await private_rabbit.start()
        await consumer.wait_consuming(30)
        event_id = await publish_event(settings, "order.placed", {"order": 1})

        async def received() -> bool:
            return [e.event_id for e in seen] == [event_id]

        await eventually(received)
    finally:
        await consumer.stop()


async def test_relay_listens_again_after_a_database_restart(
    private_postgres: PrivatePostgres, msettings: Settings
) -> None:
    url = private_postgres.database_url("panelflow")
    await migrated_database(url)
    # A 60 s poll: anything published within seconds was woken by NOTIFY.
    settings = msettings.model_copy(update={"database_url": url, "relay_poll_s": 60.0})
    pool = await create_pool(settings)
    relay = OutboxRelay(settings, pool)
    try:
        async with Observer(settings) as observer:
            await relay.start()
            await asyncio.wait_for(relay.listening.wait(), 10)

            await private_postgres.stop(mode="immediate")

            async def not_listening() -> bool:
                return not relay.listening.is_set()

            await eventually(not_listening)
            await private_postgres.start()
            await asyncio.wait_for(relay.listening.wait(), 30)
            await asyncio.sleep(0.3)  # the catch-up batch after re-listening has run

            [event] = await insert_events(pool, 1)
            await observer.wait_for(1, timeout=5)
            assert observer.ids() == [str(event.id)]
            await eventually(lambda: _is_published(pool, event.id))
    finally:
        await relay.stop()
        await pool.close()
