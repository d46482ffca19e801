"""The broker's readiness check for a consuming process (see shared/kit/readiness.py)."""

from __future__ import annotations

from shared.kit.readiness import Check, NotReady
from shared.messaging.consumer import Consumer


def consumer_check(consumer: Consumer) -> Check:
    """Ready while the consumer holds an open broker connection and is subscribed to its queue."""

    async def check() -> None:
        if not consumer.consuming.is_set():
            raise NotReady(f"not consuming {consumer.queue_name}: broker connection down")

    return check
