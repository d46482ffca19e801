"""The worker's message handler: one envelope from `worker.orders` → one use case, chosen from a table by the
event type and given the typed event (`shared.domain.events`). Acked by the consumer after this returns (every
use case commits its own transactions); an exception means redelivery, a malformed payload is dead-lettered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from shared.domain.events import CancelRequested, EventType, MalformedEvent, OrderPlaced, RefillRequested, decode
from shared.kit.group_commit import GroupCommit
from shared.messaging.envelope import Envelope, MalformedMessage
from shared.worker.cancels import Cancels
from shared.worker.refills import Refills

log = structlog.get_logger(__name__)


def typed(envelope: Envelope) -> Any:
    """The envelope's typed event; a payload that breaks its contract is `MalformedMessage` (dead-lettered)."""
    try:
        return decode(envelope.type, envelope.payload)
    except MalformedEvent as exc:
        raise MalformedMessage(str(exc)) from None


class WorkerHandlers:
    def __init__(self, submissions: GroupCommit[int, None], refills: Refills, cancels: Cancels) -> None:
        self._submissions = submissions
        self._refills = refills
        self._cancels = cancels
        self.table: dict[str, Callable[[Any], Awaitable[None]]] = {
            EventType.ORDER_PLACED: self.order_placed,
            EventType.REFILL_REQUESTED: self.refill_requested,
            EventType.CANCEL_REQUESTED: self.cancel_requested,
        }

    async def handle(self, envelope: Envelope) -> None:
        handler = self.table.get(envelope.type)
        if handler is None:
            log.warning("message_ignored", event_type=envelope.type)
            return
        await handler(typed(envelope))

    async def order_placed(self, event: OrderPlaced) -> None:
        # Duplicates and orders no longer pending (cancelled by the api, submitted by the sweeper) are skipped by
        # the claim itself: it only takes rows still 'pending'. So a redelivered event, or one whose batch failed
        # half way, submits nothing twice.
        await asyncio.gather(*(self._submissions.submit(order_id) for order_id in event.order_ids))

    async def refill_requested(self, event: RefillRequested) -> None:
        await self._refills.forward_named([event.refill_id])

    async def cancel_requested(self, event: CancelRequested) -> None:
        await self._cancels.requested(event.order_id)
