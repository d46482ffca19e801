"""The worker's message handler: one envelope from `worker.orders` → one use case. Acked by the consumer
after this returns (every use case commits its own transactions); an exception means redelivery.
"""

from __future__ import annotations

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


class WorkerHandlers:
    def __init__(self, submissions: Batcher, refills: Refills, cancels: Cancels) -> None:
        self._submissions = submissions
        self._refills = refills
        self._cancels = cancels

    async def handle(self, envelope: Envelope) -> None:
        if envelope.type == EventType.ORDER_PLACED:
            # Duplicates and orders no longer pending (cancelled by the api, submitted by the sweeper) are
            # skipped by the claim itself: it only takes rows still 'pending'.
            await self._submissions.submit(_id(envelope, "order_id"))
        elif envelope.type == EventType.REFILL_REQUESTED:
            await self._refills.forward_named([_id(envelope, "refill_id")])
        elif envelope.type == EventType.CANCEL_REQUESTED:
            await self._cancels.requested(_id(envelope, "order_id"))
        else:
            log.warning("message_ignored", event_type=envelope.type)
