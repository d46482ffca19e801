"""Helpers of the messaging tests: watch what reaches the events exchange, publish raw events, wait."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue

from shared.db import outbox
from shared.messaging import topology
from shared.messaging.connection import connect as connect_amqp
from shared.messaging.envelope import build_message
from shared.settings import Settings


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.05) -> None:
    """Wait until `check()` is true; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


class Observer:
    """An exclusive queue bound to every routing key of the events exchange: records what is published."""

    def __init__(self, settings: Settings, binding: str = "#") -> None:
        self.settings = settings
        self.binding = binding
        self.messages: list[AbstractIncomingMessage] = []
        self._connection: AbstractConnection | None = None
        self._queue: AbstractQueue | None = None

    async def __aenter__(self) -> Observer:
        self._connection = await connect_amqp(self.settings.amqp_url, timeout=10)
        channel = await self._connection.channel()
        exchange = await topology.declare(channel, self.settings)
        self._queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await self._queue.bind(exchange, routing_key=self.binding)
        await self._queue.consume(self._on_message, no_ack=True)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.messages.append(message)

    def ids(self) -> list[str]:
        return [m.message_id or "" for m in self.messages]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[AbstractIncomingMessage]:
        async def enough() -> bool:
            return len(self.messages) >= count

        await eventually(enough, timeout)
        return self.messages


@dataclass(frozen=True)
class OutboxEvent:
    id: uuid.UUID
    type: str
    payload: dict[str, Any]
    correlation_id: str


async def insert_events(pool: asyncpg.Pool, count: int, event_type: str = "order.placed") -> list[OutboxEvent]:
    """Commit `count` outbox rows in one transaction (as a placement would); any type, also unroutable ones."""
    events = [
        OutboxEvent(uuid.uuid4(), event_type, {"order": i, "charge": "1.25000"}, f"corr-{uuid.uuid4().hex[:8]}")
        for i in range(count)
    ]
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(outbox.INSERT, [(e.id, e.type, e.payload, e.correlation_id) for e in events])
    return events


async def unpublished(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return await outbox.count_unpublished(conn)


async def publish_event(
    settings: Settings,
    event_type: str,
    payload: dict[str, Any],
    *,
    event_id: uuid.UUID | None = None,
    correlation_id: str | None = None,
) -> uuid.UUID:
    """Publish one event straight to the events exchange (as the relay would), confirmed."""
    event_id = event_id or uuid.uuid4()
    message = build_message(
        event_id=event_id, event_type=event_type, payload_json=json.dumps(payload), correlation_id=correlation_id
    )
    await publish_raw(settings, event_type, message)
    return event_id


async def publish_raw(settings: Settings, routing_key: str, message: aio_pika.Message) -> None:
    connection = await connect_amqp(settings.amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await topology.declare(channel, settings)
        await exchange.publish(message, routing_key=routing_key, mandatory=True)


async def queue_depth(settings: Settings, queue_name: str) -> int:
    """Messages ready in a queue (broker name), by a passive declare."""
    connection = await connect_amqp(settings.amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        assert queue.declaration_result is not None
        return int(queue.declaration_result.message_count or 0)
