"""The worker's message handler: one envelope from `worker.orders` → one use case. Acked by the consumer
after this returns (every use case commits its own transactions); an exception means redelivery.
"""

from __future__ import annotations

import asyncio

import structlog

from shared.domain.events import EventType
from shared.messaging.envelope import Envelope, MalformedMessage
from shared.worker.batcher import Batcher
from shared.worker.cancels import Cancels
from shared.worker.refills import Refills

log = structlog.get_logger(__name__)


def _id(envelope: Envelope, name: str) -> int:
    value = envelope.payload.get(name)
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MalformedMessage(f"{envelope.type} without a valid {name}: {value!r}") from None


def placed_orders(envelope: Envelope) -> list[int]:
    """The orders an `order.placed` event names: `order_ids` (one event per placement batch), or the
    `order_id` of events written before batches had one event each."""
    if "order_ids" not in envelope.payload:
        return [_id(envelope, "order_id")]
    values = envelope.payload["order_ids"]
    if not isinstance(values, list) or not values:
        raise MalformedMessage(f"{envelope.type} with order_ids that are not a list of ids: {values!r}")
    ids: list[int] = []
    for value in values:
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise MalformedMessage(f"{envelope.type} with an invalid order id: {value!r}")
        ids.append(value)
    return ids


class WorkerHandlers:
    def __init__(self, submissions: Batcher, refills: Refills, cancels: Cancels) -> None:
        self._submissions = submissions
        self._refills = refills
        self._cancels = cancels

    async def handle(self, envelope: Envelope) -> None:
        if envelope.type == EventType.ORDER_PLACED:
            # Duplicates and orders no longer pending (cancelled by the api, submitted by the sweeper) are
            # skipped by the claim itself: it only takes rows still 'pending'. So a redelivered event, or one
            # whose batch failed half way, submits nothing twice.
            await asyncio.gather(*(self._submissions.submit(order_id) for order_id in placed_orders(envelope)))
        elif envelope.type == EventType.REFILL_REQUESTED:
            await self._refills.forward_named([_id(envelope, "refill_id")])
        elif envelope.type == EventType.CANCEL_REQUESTED:
            await self._cancels.requested(_id(envelope, "order_id"))
        else:
            log.warning("message_ignored", event_type=envelope.type)
