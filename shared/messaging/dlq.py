"""Dead-letter queues: look at what a consumer group gave up on, and send it back once the cause is fixed.

`list_dead_letters` peeks: it takes the messages without acking them and closes its channel, which hands
them all back to the queue in their order, so nothing is lost even if the process dies half way.
`replay_dead_letters` republishes each message to the events exchange under its original routing key
(persistent, `mandatory`, confirmed) and acks the dead-letter copy only after the confirm: at worst a
message is both replayed and still in the DLQ, never in neither.

The CLI exposes them as `panelflow dlq list|replay --queue worker.orders`.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from pamqp.commands import Basic

from shared.messaging import topology
from shared.messaging.connection import connect
from shared.settings import Settings

# Headers the broker adds while dead-lettering; a replayed message starts its life afresh without them.
_BROKER_HEADER_PREFIXES = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")
REPLAY_HEADER = "x-panelflow-replays"


@dataclass(frozen=True)
class DeadLetter:
    message_id: str | None
    event_type: str | None
    routing_key: str  # the original one (the event type), not the dead-letter routing
    correlation_id: str | None
    reason: str | None  # rejected, delivery_limit, expired, ...
    deaths: int
    dead_lettered_at: datetime.datetime | None
    body: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "event_type": self.event_type,
            "routing_key": self.routing_key,
            "correlation_id": self.correlation_id,
            "reason": self.reason,
            "deaths": self.deaths,
            "dead_lettered_at": self.dead_lettered_at.isoformat() if self.dead_lettered_at else None,
            "body": self.body.decode(errors="replace"),
        }


def dlq_name(settings: Settings, queue: str) -> str:
    """The broker name of the DLQ of consumer group `queue` (e.g. `worker.orders`); ValueError if unknown."""
    known = [spec.name for spec in topology.QUEUES]
    if queue not in known:
        raise ValueError(f"unknown queue {queue!r}; one of: {', '.join(known)}")
    return topology.dead_letter_queue_name(settings, queue)


async def list_dead_letters(settings: Settings, queue: str, limit: int = 100) -> list[DeadLetter]:
    """Up to `limit` messages of `queue`'s DLQ, oldest first; they all stay in the DLQ."""
    name = dlq_name(settings, queue)
    async with _connection(settings) as connection:
        channel = await connection.channel()
        await topology.declare(channel, settings)
        dlq = await channel.declare_queue(name, passive=True)
        letters: list[DeadLetter] = []
        while len(letters) < limit:
            message = await dlq.get(no_ack=False, fail=False, timeout=10)
            if message is None:
                break
            letters.append(describe(message))
        # Closing the channel returns every unacked message to the queue, in order.
        await channel.close()
    return letters


async def replay_dead_letters(
    settings: Settings, queue: str, *, limit: int | None = None, message_ids: Collection[str] | None = None
) -> int:
    """Move messages of `queue`'s DLQ back to the events exchange (all, the first `limit`, or those with the
    given message ids). Returns how many were replayed. Only what was in the DLQ when it started is looked
    at, so a message that fails again and comes straight back is not replayed twice in one call."""
    name = dlq_name(settings, queue)
    replayed = 0
    async with _connection(settings) as connection:
        publish_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await topology.declare(publish_channel, settings)
        channel = await connection.channel()
        dlq = await channel.declare_queue(name, passive=True)
        assert dlq.declaration_result is not None
        present = dlq.declaration_result.message_count or 0
        for _ in range(present):
            if limit is not None and replayed >= limit:
                break
            message = await dlq.get(no_ack=False, fail=False, timeout=10)
            if message is None:
                break
            if message_ids is not None and message.message_id not in message_ids:
                continue  # left unacked: back in the DLQ when the channel closes
            letter = describe(message)
            confirmation = await exchange.publish(
                _republished(message), routing_key=letter.routing_key, mandatory=True, timeout=30
            )
            if not isinstance(confirmation, Basic.Ack):
                raise RuntimeError(f"replay of {letter.message_id} not confirmed: {confirmation!r}")
            await message.ack()
            replayed += 1
        await channel.close()
    return replayed


def describe(message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers or {}
    deaths = headers.get("x-death")
    first: dict[str, Any] = deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}
    routing_keys = first.get("routing-keys")
    original_key = routing_keys[0] if isinstance(routing_keys, list) and routing_keys else None
    routing_key = _text(original_key) or message.type or message.routing_key or ""
    when = first.get("time")
    return DeadLetter(
        message_id=message.message_id,
        event_type=message.type,
        routing_key=routing_key,
        correlation_id=message.correlation_id,
        reason=_text(first.get("reason")) or _text(headers.get("x-first-death-reason")),
        deaths=_death_count(deaths),
        dead_lettered_at=when if isinstance(when, datetime.datetime) else None,
        body=message.body,
    )


def _republished(message: AbstractIncomingMessage) -> aio_pika.Message:
    headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith(_BROKER_HEADER_PREFIXES)}
    previous = headers.get(REPLAY_HEADER)
    headers[REPLAY_HEADER] = (previous if isinstance(previous, int) else 0) + 1
    return aio_pika.Message(
        message.body,
        headers=headers,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        timestamp=message.timestamp,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


@contextlib.asynccontextmanager
async def _connection(settings: Settings) -> AsyncIterator[AbstractConnection]:
    connection = await connect(settings.amqp_url, timeout=10, name="panelflow-dlq")
    try:
        yield connection
    finally:
        await connection.close()


def _death_count(deaths: object) -> int:
    if not isinstance(deaths, list):
        return 0
    counts = [d.get("count", 1) for d in deaths if isinstance(d, dict)]
    return sum(c if isinstance(c, int) else 1 for c in counts)


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None
