"""Event types carried through the outbox and RabbitMQ. The event type is also the routing key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from shared.domain.statuses import OrderStatus


class EventType(StrEnum):
    ORDER_PLACED = "order.placed"
    REFILL_REQUESTED = "refill.requested"
    CANCEL_REQUESTED = "cancel.requested"
    ORDER_STATUS_CHANGED = "order.status_changed"
    ORDER_COMPLETED = "order.completed"
    ORDER_PARTIAL = "order.partial"
    ORDER_CANCELED = "order.canceled"
    REFILL_STATUS_CHANGED = "refill.status_changed"
    BALANCE_LOW = "balance.low"
    WEBHOOK_TEST = "webhook.test"


# Commands for the worker, and the notifications subscribers may receive by webhook.
WORKER_EVENTS = (EventType.ORDER_PLACED, EventType.REFILL_REQUESTED, EventType.CANCEL_REQUESTED)
SUBSCRIBER_EVENTS = (
    EventType.ORDER_STATUS_CHANGED,
    EventType.ORDER_COMPLETED,
    EventType.ORDER_PARTIAL,
    EventType.ORDER_CANCELED,
    EventType.REFILL_STATUS_CHANGED,
    EventType.BALANCE_LOW,
    EventType.WEBHOOK_TEST,
)


@dataclass(frozen=True)
class Event:
    type: EventType
    payload: dict[str, Any]
    correlation_id: str | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class OrderStatusChanged:
    """`order.status_changed` and the terminal `order.completed` / `order.partial` / `order.canceled`, which carry
    the same body: the order as `status` answers it after the change (`OrderStatus`, the one builder of both)."""

    TYPE: ClassVar[EventType] = EventType.ORDER_STATUS_CHANGED
    account_id: int
    order: int
    shown: OrderStatus

    def to_payload(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "order": self.order, **self.shown.answer()}
