"""Consume one queue with an async handler: the base of the worker and webhooks processes.

    consumer = Consumer(settings, topology.WORKER_QUEUE, handle)   # handle: async (Envelope) -> None
    await consumer.start()          # returns at once; `consumer.consuming` is set while subscribed
    ...
    await consumer.stop()           # stop taking messages, let in-flight handlers finish, disconnect

Acknowledgement follows the handler: ack after it returns (it has committed its own transaction; handlers that
finish together are acked with one frame, `shared/messaging/acks.py`), nack with
requeue when it raises (any exception, after a pause growing with the delivery count), so the quorum
queue's `x-delivery-limit` dead-letters a poison message after that many deliveries; a message that cannot
be parsed at all (not JSON, no event id) is dead-lettered at once.

An outage is not a poison message: when the handler fails because the database cannot be reached
(`DATABASE_UNAVAILABLE`: down, restarting, connection lost), the consumer keeps the delivery and runs the
handler again in-process with backoff (up to `consumer_retry_max_s` apart) until the database answers, so
however long the outage lasts it uses up none of the delivery limit. Only stopping the consumer (the message
is then requeued as on any failure) or losing the channel (the broker redelivers it) ends that wait.
Handlers run concurrently, up to `amqp_prefetch` at a time.

The connection is supervised here rather than by aio-pika's robust connection, whose restoration of
consumers after a broker restart has known failure cases (mosquito/aio-pika#231, #626, #334): on any loss
(connection or channel closed, consumer cancelled by the broker) everything is declared and subscribed
again from scratch, with backoff. A handler in flight when the connection drops is not cancelled; its
ack fails and the broker redelivers the message, which handlers dedupe on the event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import Awaitable, Callable
from typing import Any

import sentry_sdk
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from prometheus_client import Counter

from shared.db.pool import DATABASE_UNAVAILABLE
from shared.domain.events import EventType
from shared.kit.supervisor import Beat, stall_after, supervise
from shared.messaging import topology
from shared.messaging.acks import AckBatcher
from shared.messaging.backoff import Backoff
from shared.messaging.connection import connect
from shared.messaging.envelope import Envelope, MalformedMessage, parse_message
from shared.observability import metrics
from shared.settings import Settings

Handler = Callable[[Envelope], Awaitable[None]]

log = structlog.get_logger("panelflow.consumer")

# The event types counted by name in `panelflow_messages_consumed_total`; anything else is "other".
_EVENT_TYPES = frozenset(str(t) for t in EventType)

# While subscribed, the loop reports a round this often (see shared/kit/supervisor.py).
HEARTBEAT_S = 5.0


class Consumer:
    def __init__(self, settings: Settings, queue: str, handler: Handler, *, prefetch: int | None = None) -> None:
        self.settings = settings
        self.queue = queue
        self.queue_name = topology.queue_name(settings, queue)
        self.handler = handler
        self.prefetch = prefetch if prefetch is not None else settings.amqp_prefetch
        # Set while subscribed to the queue (cleared during reconnection): readiness probes and tests wait on it.
        self.consuming = asyncio.Event()
        self.handled_total = 0
        self.failed_total = 0
        # Attempts that found the database away and were tried again in-process (not counted as deliveries).
        self.waits_total = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._timeout = settings.consumer_stop_timeout_s

    async def start(self) -> None:
        """Start consuming in the background; reconnects by itself until `stop()`."""
        self._stopping.clear()
        self._task = supervise(
            f"consumer-{self.queue}",
            self._run,
            stopping=self._stopping,
            stall_after_s=stall_after(self.settings.loop_stall_s, max(HEARTBEAT_S, self.settings.amqp_reconnect_max_s)),
        )

    async def wait_consuming(self, timeout: float) -> None:
        await asyncio.wait_for(self.consuming.wait(), timeout)

    async def stop(self, timeout: float | None = None) -> None:
        """Stop taking messages, wait up to `timeout` for handlers in flight (acking them), then disconnect."""
        self._timeout = timeout if timeout is not None else self.settings.consumer_stop_timeout_s
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        # Handlers left over from a lost connection: their acks fail anyway, but let them finish their work.
        await self._drain(self._timeout)
        log.info("consumer_stopped", queue=self.queue, handled=self.handled_total, failed=self.failed_total)

    async def _run(self, beat: Beat) -> None:
        backoff = Backoff(self.settings.amqp_reconnect_max_s)
        while not self._stopping.is_set():
            beat()
            try:
                await self._consume_until_lost(backoff, beat)
            except Exception as exc:  # broker unreachable or the session broke: subscribe again
                log.warning("consumer_connection_error", queue=self.queue, error=f"{type(exc).__name__}: {exc}")
            finally:
                self.consuming.clear()
            if not self._stopping.is_set():
                delay = backoff.next_delay()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)

    async def _consume_until_lost(self, backoff: Backoff, beat: Beat) -> None:
        lost = asyncio.Event()

        def on_lost(*_args: Any) -> None:
            lost.set()

        connection = await connect(self.settings.amqp_url, timeout=10, name=f"panelflow-{self.queue}")
        try:
            connection.close_callbacks.add(on_lost)
            channel = await connection.channel()
            channel.close_callbacks.add(on_lost)
            # The broker cancels a consumer when its queue is deleted or moves; aio-pika does not resubscribe.
            (await channel.get_underlay_channel()).on_consumer_cancel_callbacks.add(on_lost)
            await channel.set_qos(prefetch_count=self.prefetch)
            await topology.declare(channel, self.settings)
            queue = await channel.get_queue(self.queue_name, ensure=True)
            acks = AckBatcher(await channel.get_underlay_channel(), self.queue)
            tag = await queue.consume(functools.partial(self._on_message, acks=acks))
            self.consuming.set()
            backoff.reset()
            log.info("consumer_started", queue=self.queue, prefetch=self.prefetch)
            while not await _first_of(lost, self._stopping, timeout=HEARTBEAT_S):
                beat()  # subscribed and waiting for messages is a round of this loop
            if self._stopping.is_set() and not lost.is_set():
                await self._unsubscribe(queue, tag)
                await self._drain(self._timeout)
                await acks.close()
            else:
                log.warning("consumer_connection_lost", queue=self.queue, in_flight=len(self._in_flight))
        finally:
            self.consuming.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)

    async def _unsubscribe(self, queue: AbstractQueue, tag: str) -> None:
        self.consuming.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(queue.cancel(tag), 5)

    async def _drain(self, timeout: float) -> None:
        if not self._in_flight:
            return
        _, pending = await asyncio.wait(set(self._in_flight), timeout=timeout)
        if pending:
            log.warning("consumer_stop_timeout", queue=self.queue, cancelled=len(pending))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _on_message(self, message: AbstractIncomingMessage, *, acks: AckBatcher) -> None:
        # Our own task, shielded: closing the channel cancels aio-pika's delivery tasks, and a broker blip
        # must not interrupt a handler half way (e.g. during an upstream call).
        task = asyncio.create_task(self._handle(message, acks))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        await asyncio.shield(task)

    async def _handle(self, message: AbstractIncomingMessage, acks: AckBatcher) -> None:
        try:
            envelope = parse_message(message)
        except MalformedMessage as exc:
            log.error("message_malformed", queue=self.queue, message_id=message.message_id, error=str(exc))
            metrics.MESSAGES_CONSUMED.labels(queue=self.queue, event_type=metrics.OTHER, outcome="reject").inc()
            await self._settle(message.reject(requeue=False), message, "reject")
            acks.settled(message.delivery_tag)
            return
        # Bound and reset by hand: the context manager costs several times as much, once per message.
        tokens = structlog.contextvars.bind_contextvars(
            correlation_id=envelope.correlation_id, event_id=str(envelope.event_id), event_type=envelope.type
        )
        try:
            try:
                await self._handle_while_reachable(envelope, message)
            except Exception as exc:
                self.failed_total += 1
                self._count(envelope, "nack")
                log.exception("message_handler_failed", queue=self.queue, delivery_count=envelope.delivery_count)
                sentry_sdk.capture_exception(exc)
                await self._pause_before_retry(envelope.delivery_count)
                await self._settle(message.nack(requeue=True), message, "nack")
                acks.settled(message.delivery_tag)
                return
            self.handled_total += 1
            self._count(envelope, "ack")
            acks.handled(message.delivery_tag)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    async def _handle_while_reachable(self, envelope: Envelope, message: AbstractIncomingMessage) -> None:
        """Run the handler; while it fails because the database is away, run it again here, holding the delivery,
        until it succeeds, fails otherwise, the consumer stops or the delivery's channel is gone."""
        backoff = Backoff(self.settings.consumer_retry_max_s, self.settings.consumer_retry_base_s)
        while True:
            try:
                await self.handler(envelope)
            except DATABASE_UNAVAILABLE as exc:
                if self._stopping.is_set() or message.channel.is_closed:
                    raise
                if backoff.failures == 0:
                    error = f"{type(exc).__name__}: {exc}"
                    log.warning("message_handler_waiting_for_database", queue=self.queue, error=error)
                self.waits_total += 1
                _consumed(self.queue, metrics.event_type_label(envelope.type, _EVENT_TYPES), "wait").inc()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff.next_delay())
            else:
                if backoff.failures:
                    log.info("message_handler_database_back", queue=self.queue, attempts=backoff.failures + 1)
                return

    async def _pause_before_retry(self, delivery_count: int) -> None:
        delay = min(
            self.settings.consumer_retry_max_s, self.settings.consumer_retry_base_s * 2 ** min(delivery_count, 20)
        )
        with contextlib.suppress(TimeoutError):  # stopping: requeue at once
            await asyncio.wait_for(self._stopping.wait(), random.uniform(delay / 2, delay))

    def _count(self, envelope: Envelope, outcome: str) -> None:
        _consumed(self.queue, metrics.event_type_label(envelope.type, _EVENT_TYPES), outcome).inc()

    async def _settle(self, action: Awaitable[None], message: AbstractIncomingMessage, name: str) -> None:
        try:
            await action
        except Exception as exc:  # channel gone: the broker redelivers the message after reconnection
            log.warning("message_settle_failed", queue=self.queue, action=name, message_id=message.message_id,
                        error=f"{type(exc).__name__}: {exc}")  # fmt: skip


@functools.cache
def _consumed(queue: str, event_type: str, outcome: str) -> Counter:
    # prometheus-client's labels() lookup costs more than the increment: keep the children per label set
    # (bounded: queues x known event types and "other" x outcomes).
    return metrics.MESSAGES_CONSUMED.labels(queue=queue, event_type=event_type, outcome=outcome)


async def _first_of(*events: asyncio.Event, timeout: float | None = None) -> bool:
    """Whether one of the events was set within `timeout`."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for waiter in waiters:
            waiter.cancel()
