"""Event types carried through the outbox and RabbitMQ (the event type is also the routing key), and the one
typed contract of each: a frozen dataclass with `to_payload()` and a strict `from_payload()`.

`from_payload` raises `MalformedEvent` for a payload that lacks a field or has one of the wrong type (its
consumer dead-letters that message at once); fields it does not know are ignored, so a newer producer may add
some. `order.placed` also reads the single-order shape `{"order_id": n}` written before placement batches had
one event each (see docs/lifecycle.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, ClassVar, Protocol, Self

from shared.domain.money import format_money
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


class MalformedEvent(ValueError):
    """A payload that does not match its event type's contract: no handler can ever process it."""


class Contract(Protocol):
    def to_payload(self) -> dict[str, Any]: ...


# --- field readers ----------------------------------------------------------------------------------------


def _field(payload: dict[str, Any], name: str, what: str) -> Any:
    if not isinstance(payload, dict):
        raise MalformedEvent(f"{what} payload is not an object")
    if name not in payload:
        raise MalformedEvent(f"{what} without {name}")
    return payload[name]


def _id_value(value: Any, what: str, name: str) -> int:
    # Ids are JSON integers; a decimal string is read too, as the worker always has.
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > 0:
        return int(value)
    raise MalformedEvent(f"{what} with an invalid {name}: {value!r}")


def _id(payload: dict[str, Any], name: str, what: str) -> int:
    return _id_value(_field(payload, name, what), what, name)


def _text(payload: dict[str, Any], name: str, what: str) -> str:
    value = _field(payload, name, what)
    if not isinstance(value, str):
        raise MalformedEvent(f"{what} with a {name} that is not a string: {value!r}")
    return value


def _money(payload: dict[str, Any], name: str, what: str) -> Decimal:
    value = _field(payload, name, what)
    try:
        amount = Decimal(value) if isinstance(value, str | Decimal) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise MalformedEvent(f"{what} with a {name} that is not an amount: {value!r}")
    return amount


# --- commands for the worker ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderPlaced:
    """Orders placed together (one placement batch), to buy upstream. Written by SQL (shared/db/placement.py)."""

    TYPE: ClassVar[EventType] = EventType.ORDER_PLACED
    order_ids: tuple[int, ...]

    def to_payload(self) -> dict[str, Any]:
        return {"order_ids": list(self.order_ids)}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Self:
        what = str(cls.TYPE)
        if isinstance(payload, dict) and "order_ids" not in payload and "order_id" in payload:
            return cls((_id(payload, "order_id", what),))  # the single-order shape of older releases
        values = _field(payload, "order_ids", what)
        if not isinstance(values, list) or not values:
            raise MalformedEvent(f"{what} with order_ids that are not a list of ids: {values!r}")
        ids = []
        for value in values:
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise MalformedEvent(f"{what} with an invalid order id: {value!r}")
            ids.append(value)
        return cls(tuple(ids))


@dataclass(frozen=True)
class RefillRequested:
    TYPE: ClassVar[EventType] = EventType.REFILL_REQUESTED
    refill_id: int
    order_id: int
    account_id: int

    def to_payload(self) -> dict[str, Any]:
        return {"refill_id": self.refill_id, "order_id": self.order_id, "account_id": self.account_id}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Self:
        what = str(cls.TYPE)
        return cls(_id(payload, "refill_id", what), _id(payload, "order_id", what), _id(payload, "account_id", what))


@dataclass(frozen=True)
class CancelRequested:
    TYPE: ClassVar[EventType] = EventType.CANCEL_REQUESTED
    order_id: int
    account_id: int

    def to_payload(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "account_id": self.account_id}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Self:
        what = str(cls.TYPE)
        return cls(_id(payload, "order_id", what), _id(payload, "account_id", what))


# --- notifications (webhooks: the payload without `account_id` is the body's `data`) ----------------------


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

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Self:
        what = "order event"
        shown = OrderStatus(
            status=_text(payload, "status", what),
            charge=_text(payload, "charge", what),
            start_count=_text(payload, "start_count", what),
            remains=_text(payload, "remains", what),
            currency=_text(payload, "currency", what),
        )
        return cls(_id(payload, "account_id", what), _id(payload, "order", what), shown)


@dataclass(frozen=True)
class RefillStatusChanged:
    TYPE: ClassVar[EventType] = EventType.REFILL_STATUS_CHANGED
    account_id: int
    refill: int
    order: int
    status: str

    def to_payload(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "refill": self.refill, "order": self.order, "status": self.status}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Self:
        what = str(cls.TYPE)
        return cls(
            _id(payload, "account_id", what),
            _id(payload, "refill", what),
            _id(payload, "order", what),
            _text(payload, "status", what),
        )


@dataclass(frozen=True)
class BalanceLow:
    TYPE: ClassVar[EventType] = EventType.BALANCE_LOW
    account_id: int
    balance: Decimal
    threshold: Decimal
    currency: str

    def to_payload(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "balance": format_money(self.balance),
            "threshold": format_money(self.threshold),
            "currency": self.currency,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Self:
        what = str(cls.TYPE)
        return cls(
            _id(payload, "account_id", what),
            _money(payload, "balance", what),
            _money(payload, "threshold", what),
            _text(payload, "currency", what),
        )


@dataclass(frozen=True)
class WebhookTest:
    TYPE: ClassVar[EventType] = EventType.WEBHOOK_TEST
    account_id: int
    webhook: int
    message: str = "This is a test event from panelflow."

    def to_payload(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "webhook": self.webhook, "message": self.message}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Self:
        what = str(cls.TYPE)
        return cls(_id(payload, "account_id", what), _id(payload, "webhook", what), _text(payload, "message", what))


# Every event type → its contract. A new EventType without an entry fails tests/domain/test_events.py.
CONTRACTS: dict[EventType, Any] = {
    EventType.ORDER_PLACED: OrderPlaced,
    EventType.REFILL_REQUESTED: RefillRequested,
    EventType.CANCEL_REQUESTED: CancelRequested,
    EventType.ORDER_STATUS_CHANGED: OrderStatusChanged,
    EventType.ORDER_COMPLETED: OrderStatusChanged,
    EventType.ORDER_PARTIAL: OrderStatusChanged,
    EventType.ORDER_CANCELED: OrderStatusChanged,
    EventType.REFILL_STATUS_CHANGED: RefillStatusChanged,
    EventType.BALANCE_LOW: BalanceLow,
    EventType.WEBHOOK_TEST: WebhookTest,
}


def decode(event_type: str, payload: dict[str, Any]) -> Any:
    """The typed event of `payload`, or `MalformedEvent` (also for an event type we do not know)."""
    try:
        contract = CONTRACTS[EventType(event_type)]
    except ValueError:
        raise MalformedEvent(f"unknown event type {event_type!r}") from None
    return contract.from_payload(payload)


def event(kind: EventType, body: Contract, correlation_id: str | None = None) -> Event:
    """The outbox event of a typed body, under its type (`kind`: the terminal order events share one body)."""
    if not isinstance(body, CONTRACTS[kind]):
        raise TypeError(f"{type(body).__name__} is not the contract of {kind}")
    return Event(kind, body.to_payload(), correlation_id)
