"""RabbitMQ topology, declared idempotently by every process that publishes or consumes.

One durable topic exchange for events; a quorum queue per consumer group with an explicit delivery limit
and a dead-letter queue of its own (through one dead-letter exchange, routed by the queue's name).
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from shared.domain.events import SUBSCRIBER_EVENTS, WORKER_EVENTS, EventType
from shared.settings import Settings

WORKER_QUEUE = "worker.orders"
WEBHOOKS_QUEUE = "webhooks.events"


@dataclass(frozen=True)
class QueueSpec:
    name: str
    routing_keys: tuple[EventType, ...]


QUEUES = (
    QueueSpec(WORKER_QUEUE, WORKER_EVENTS),
    QueueSpec(WEBHOOKS_QUEUE, SUBSCRIBER_EVENTS),
)


def exchange_name(settings: Settings) -> str:
    return settings.amqp_name("events")


def dead_letter_exchange_name(settings: Settings) -> str:
    return settings.amqp_name("dlx")


def queue_name(settings: Settings, queue: str) -> str:
    return settings.amqp_name(queue)


def dead_letter_queue_name(settings: Settings, queue: str) -> str:
    return settings.amqp_name(queue + ".dlq")


def all_queue_names(settings: Settings) -> list[str]:
    names = []
    for spec in QUEUES:
        names += [queue_name(settings, spec.name), dead_letter_queue_name(settings, spec.name)]
    return names


def all_exchange_names(settings: Settings) -> list[str]:
    return [exchange_name(settings), dead_letter_exchange_name(settings)]


async def declare(channel: AbstractChannel, settings: Settings) -> AbstractExchange:
    """Declare the whole topology; returns the events exchange. Safe to call any number of times."""
    exchange = await channel.declare_exchange(exchange_name(settings), aio_pika.ExchangeType.TOPIC, durable=True)
    dlx = await channel.declare_exchange(
        dead_letter_exchange_name(settings), aio_pika.ExchangeType.DIRECT, durable=True
    )
    for spec in QUEUES:
        name = queue_name(settings, spec.name)
        dlq = await channel.declare_queue(
            dead_letter_queue_name(settings, spec.name), durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dlq.bind(dlx, routing_key=name)
        queue = await channel.declare_queue(
            name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": settings.amqp_delivery_limit,
                "x-dead-letter-exchange": dlx.name,
                "x-dead-letter-routing-key": name,
            },
        )
        for key in spec.routing_keys:
            await queue.bind(exchange, routing_key=str(key))
    return exchange
