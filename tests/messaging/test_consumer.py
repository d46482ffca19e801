"""The consumer base against the real RabbitMQ: acks after the handler, retries, dead letters, replay, stop."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid

import aio_pika
import pytest
import structlog

from shared.messaging import topology
from shared.messaging.connection import connect as connect_amqp
from shared.messaging.consumer import Consumer
from shared.messaging.dlq import list_dead_letters, replay_dead_letters
from shared.messaging.envelope import Envelope, build_message
from shared.settings import Settings
from tests.support.isolation import delete_amqp_names
from tests.support.messaging import eventually, publish_event, publish_raw, queue_depth

QUEUE = topology.WORKER_QUEUE


class Recorder:
    """A handler that records what it got (and the log context it ran in), optionally failing or blocking."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.seen: list[Envelope] = []
        self.contexts: list[dict[str, object]] = []
        self.release: asyncio.Event | None = None
        self.finished: list[uuid.UUID] = []
        self.times: list[float] = []

    async def __call__(self, envelope: Envelope) -> None:
        self.seen.append(envelope)
        self.times.append(time.monotonic())
        self.contexts.append(structlog.contextvars.get_contextvars())
        if self.release is not None:
            await self.release.wait()
        if self.fail:
            raise RuntimeError("handler failure")
        self.finished.append(envelope.event_id)

    async def wait_seen(self, count: int, timeout: float = 10.0) -> None:
        async def enough() -> bool:
            return len(self.seen) >= count

        await eventually(enough, timeout)


async def _started(settings: Settings, handler: Recorder, **kwargs: int) -> Consumer:
    consumer = Consumer(settings, QUEUE, handler, **kwargs)
    await consumer.start()
    await consumer.wait_consuming(15)
    return consumer


async def _dlq_depth(settings: Settings) -> int:
    return await queue_depth(settings, topology.dead_letter_queue_name(settings, QUEUE))


async def test_handled_message_is_acked_with_envelope_and_log_context(msettings: Settings) -> None:
    handler = Recorder()
    consumer = await _started(msettings, handler)
    try:
        event_id = await publish_event(msettings, "order.placed", {"order": 7, "charge": "1.50"}, correlation_id="c-1")
        await handler.wait_seen(1)
        await eventually(lambda: _handled(consumer, 1))
    finally:
        await consumer.stop()

    envelope = handler.seen[0]
    assert envelope.event_id == event_id
    assert envelope.type == "order.placed"
    assert envelope.payload == {"order": 7, "charge": "1.50"}
    assert envelope.correlation_id == "c-1"
    assert envelope.delivery_count == 0
    assert handler.contexts[0]["correlation_id"] == "c-1"
    assert handler.contexts[0]["event_id"] == str(event_id)
    assert "correlation_id" not in structlog.contextvars.get_contextvars()  # unbound after the handler
    # Acked: nothing left in the queue once the consumer is gone, nothing dead-lettered.
    assert await queue_depth(msettings, topology.queue_name(msettings, QUEUE)) == 0
    assert await _dlq_depth(msettings) == 0


async def _handled(consumer: Consumer, count: int) -> bool:
    return consumer.handled_total >= count


async def test_message_is_not_acked_before_the_handler_returns(msettings: Settings) -> None:
    blocked = Recorder()
    blocked.release = asyncio.Event()  # never set: the handler never returns
    consumer = await _started(msettings, blocked)
    event_id = await publish_event(msettings, "order.placed", {"order": 1})
    await blocked.wait_seen(1)
    await consumer.stop(timeout=0.2)  # gives up on the handler: it is cancelled, the message was never acked

    again = Recorder()
    consumer = await _started(msettings, again)
    try:
        await again.wait_seen(1)
    finally:
        await consumer.stop()
    assert again.seen[0].event_id == event_id
    assert again.seen[0].redelivered
    assert again.seen[0].delivery_count >= 1


async def test_failing_handler_is_retried_then_dead_lettered_at_the_delivery_limit(msettings: Settings) -> None:
    settings = msettings.model_copy(update={"amqp_delivery_limit": 2, "consumer_retry_base_s": 0.2})
    handler = Recorder(fail=True)
    consumer = await _started(settings, handler)
    try:
        event_id = await publish_event(settings, "order.placed", {"order": 1})

        async def dead_lettered() -> bool:
            return await _dlq_depth(settings) == 1

        await eventually(dead_lettered)
        await asyncio.sleep(0.3)
    finally:
        await consumer.stop()
    # First delivery + `delivery limit` redeliveries, then the dead-letter queue.
    assert [e.event_id for e in handler.seen] == [event_id] * 3
    assert [e.delivery_count for e in handler.seen] == [0, 1, 2]
    # Requeued after a pause that doubles per delivery (with jitter: half to all of 0.2 s, then of 0.4 s).
    gaps = [later - earlier for earlier, later in zip(handler.times, handler.times[1:], strict=False)]
    assert gaps[0] >= 0.1
    assert gaps[1] >= 0.2
    assert await queue_depth(settings, topology.queue_name(settings, QUEUE)) == 0


async def test_malformed_message_is_dead_lettered_at_once(msettings: Settings) -> None:
    handler = Recorder()
    consumer = await _started(msettings, handler)
    try:
        await publish_raw(msettings, "order.placed", aio_pika.Message(b"not json", message_id=str(uuid.uuid4())))
        await publish_raw(msettings, "order.placed", aio_pika.Message(b"[1, 2]", message_id=str(uuid.uuid4())))
        # (aiormq gives every message it publishes an id; other clients may send none or a foreign one.)
        await publish_raw(msettings, "order.placed", aio_pika.Message(b"{}", message_id="not-an-event-id"))

        async def all_dead() -> bool:
            return await _dlq_depth(msettings) == 3

        await eventually(all_dead)
        await asyncio.sleep(0.2)
    finally:
        await consumer.stop()
    assert handler.seen == []
    assert consumer.failed_total == 0  # never handed to the handler, never retried
    assert await queue_depth(msettings, topology.queue_name(msettings, QUEUE)) == 0


async def test_dead_letters_can_be_listed_without_loss_and_replayed(msettings: Settings) -> None:
    settings = msettings.model_copy(update={"amqp_delivery_limit": 1})
    failing = Recorder(fail=True)
    consumer = await _started(settings, failing)
    try:
        # One at a time: with two in flight, their jittered retry pauses decide which reaches the DLQ first,
        # so on a busy machine the DLQ order would not be the publish order that the listing is checked for.
        ids: list[uuid.UUID] = []
        for i in range(2):
            ids.append(await publish_event(settings, "order.placed", {"order": i}, correlation_id=f"c{i}"))

            async def dead_lettered(count: int = i + 1) -> bool:
                return await _dlq_depth(settings) == count

            await eventually(dead_lettered)
    finally:
        await consumer.stop()

    for _ in range(2):  # listing twice shows the same: peeking loses nothing
        letters = await list_dead_letters(settings, QUEUE)
        assert [letter.message_id for letter in letters] == [str(i) for i in ids]
        assert [letter.routing_key for letter in letters] == ["order.placed", "order.placed"]
        assert [letter.correlation_id for letter in letters] == ["c0", "c1"]
        assert all(letter.reason == "delivery_limit" for letter in letters), [x.reason for x in letters]
    assert await _dlq_depth(settings) == 2

    fixed = Recorder()
    consumer = await _started(settings, fixed)
    try:
        assert await replay_dead_letters(settings, QUEUE, message_ids={str(ids[1])}) == 1
        await fixed.wait_seen(1)
        assert [e.event_id for e in fixed.seen] == [ids[1]]
        assert await replay_dead_letters(settings, QUEUE) == 1
        await fixed.wait_seen(2)
        await eventually(lambda: _handled(consumer, 2))
    finally:
        await consumer.stop()
    assert sorted(str(e.event_id) for e in fixed.seen) == sorted(str(i) for i in ids)
    assert fixed.seen[0].correlation_id == "c1"
    assert await _dlq_depth(settings) == 0


async def test_unknown_queue_is_refused_by_the_dlq_tools(msettings: Settings) -> None:
    with pytest.raises(ValueError, match="unknown queue"):
        await list_dead_letters(msettings, "nope")


async def test_graceful_stop_lets_in_flight_handlers_finish_and_acks_them(msettings: Settings) -> None:
    handler = Recorder()
    handler.release = asyncio.Event()
    consumer = await _started(msettings, handler)
    event_id = await publish_event(msettings, "order.placed", {"order": 1})
    await handler.wait_seen(1)
    stopping = asyncio.create_task(consumer.stop(timeout=10))
    await asyncio.sleep(0.3)
    assert not stopping.done()  # waits for the handler
    handler.release.set()
    await asyncio.wait_for(stopping, 10)
    assert handler.finished == [event_id]
    assert consumer.handled_total == 1
    assert await queue_depth(msettings, topology.queue_name(msettings, QUEUE)) == 0


async def test_consumer_resubscribes_when_the_broker_cancels_it(msettings: Settings) -> None:
    handler = Recorder()
    consumer = await _started(msettings, handler)
    try:
        # Deleting the queues makes the broker cancel the consumer (aio-pika's robust connection stays silent).
        await delete_amqp_names(msettings)

        async def resubscribed() -> bool:
            return consumer.consuming.is_set() and await _queue_exists(msettings)

        await asyncio.sleep(0.3)
        await eventually(resubscribed, timeout=15)
        event_id = await publish_event(msettings, "order.placed", {"order": 1})
        await handler.wait_seen(1)
    finally:
        await consumer.stop()
    assert handler.seen[0].event_id == event_id


async def _queue_exists(settings: Settings) -> bool:
    try:
        await queue_depth(settings, topology.queue_name(settings, QUEUE))
    except Exception:
        return False
    return True


async def test_a_slow_handler_does_not_hold_back_the_acks_of_the_others(msettings: Settings) -> None:
    # Prefetch 2: were the others' acks held back behind the blocked message, the broker would stop after one.
    handler = BlockFirst()
    consumer = await _started(msettings, handler, prefetch=2)
    try:
        first = await publish_event(msettings, "order.placed", {"order": 0})
        await eventually(lambda: _seen(handler, 1))
        for n in range(1, 6):
            await publish_event(msettings, "order.placed", {"order": n})
        await eventually(lambda: _handled(consumer, 5))
        assert first not in handler.finished
        handler.unblock.set()
        await eventually(lambda: _handled(consumer, 6))
    finally:
        await consumer.stop()
    assert await queue_depth(msettings, topology.queue_name(msettings, QUEUE)) == 0


class BlockFirst(Recorder):
    """Blocks the first message's handler until `unblock` is set; the others pass."""

    def __init__(self) -> None:
        super().__init__()
        self.unblock = asyncio.Event()

    async def __call__(self, envelope: Envelope) -> None:
        self.seen.append(envelope)
        if len(self.seen) == 1:
            await self.unblock.wait()
        self.finished.append(envelope.event_id)


async def _seen(handler: Recorder, count: int) -> bool:
    return len(handler.seen) >= count


async def test_handlers_finishing_in_any_order_are_each_acked_once(msettings: Settings) -> None:
    # A double ack or an ack of an unknown tag closes the channel: the consumer would reconnect and the broker
    # redeliver, so more handler calls than messages, or a redelivered one, would show it.
    rng = random.Random(7)

    async def handle(envelope: Envelope) -> None:
        seen.append(envelope)
        await asyncio.sleep(rng.choice((0, 0, 0.001, 0.005, 0.02)))

    seen: list[Envelope] = []
    consumer = Consumer(msettings, QUEUE, handle, prefetch=64)
    await consumer.start()
    await consumer.wait_consuming(15)
    try:
        connection = await connect_amqp(msettings.amqp_url, timeout=10)
        async with connection:
            channel = await connection.channel()
            exchange = await topology.declare(channel, msettings)
            for n in range(400):
                message = build_message(
                    event_id=uuid.uuid4(),
                    event_type="order.placed",
                    payload_json=json.dumps({"order": n}),
                    correlation_id=None,
                )
                await exchange.publish(message, routing_key="order.placed")
        await eventually(lambda: _handled(consumer, 400), timeout=30)
        await asyncio.sleep(0.5)  # a redelivery would arrive meanwhile
    finally:
        await consumer.stop()
    assert consumer.handled_total == 400
    assert len(seen) == 400
    assert not any(e.redelivered for e in seen)
    assert await queue_depth(msettings, topology.queue_name(msettings, QUEUE)) == 0
