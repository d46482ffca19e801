"""The order lifecycle after placement, pure: what an upstream status means for an order, what is refunded,
which events a change emits, and when to look again.

Nothing here touches the database or the network; `shared/worker/` applies these decisions in transactions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared.domain.events import EventType, OrderStatusChanged
from shared.domain.money import ZERO, partial_refund
from shared.domain.statuses import IN_FLIGHT, TERMINAL, OrderState, OrderStatus, RefillState, public_order_status

# The contract's order status strings (as the upstream client normalises them) → our internal states.
# An upstream "Pending" for an order it accepted means the order exists and waits there: for us it is in
# progress (our own Pending means "not bought yet").
UPSTREAM_ORDER_STATES: dict[str, OrderState] = {
    "Pending": OrderState.IN_PROGRESS,
    "In progress": OrderState.IN_PROGRESS,
    "Processing": OrderState.PROCESSING,
    "Completed": OrderState.COMPLETED,
    "Partial": OrderState.PARTIAL,
    "Canceled": OrderState.CANCELED,
}

UPSTREAM_REFILL_STATES: dict[str, RefillState] = {
    "Pending": RefillState.IN_PROGRESS,
    "In progress": RefillState.IN_PROGRESS,
    "Completed": RefillState.COMPLETED,
    "Rejected": RefillState.REJECTED,
    "Canceled": RefillState.CANCELED,
}

SUBSCRIPTIONS = "Subscriptions"

_TERMINAL_EVENTS = {
    OrderState.COMPLETED: EventType.ORDER_COMPLETED,
    OrderState.PARTIAL: EventType.ORDER_PARTIAL,
    OrderState.CANCELED: EventType.ORDER_CANCELED,
}


@dataclass(frozen=True)
class OrderView:
    """What the lifecycle needs to know of an order row."""

    id: int
    account_id: int
    type: str
    state: OrderState
    quantity: int
    charge: Decimal
    refunded: Decimal
    currency: str
    start_count: int | None = None
    remains: int | None = None


@dataclass(frozen=True)
class Observation:
    """One order's status as the upstream reported it (already normalised to the contract's strings)."""

    status: str
    start_count: int | None = None
    remains: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What an observation does to an order: its new state and counters, and the refund now owed."""

    state: OrderState
    start_count: int | None
    remains: int | None
    refund: Decimal
    # Why the observation was not applied in full (unknown status, Partial without remains, ...), for ops.
    held: str | None = None

    def changes(self, order: OrderView) -> bool:
        return (self.state, self.start_count, self.remains) != (order.state, order.start_count, order.remains)


def refund_owed(order: OrderView, state: OrderState, remains: int | None) -> Decimal:
    """The refund a move into `state` owes, minus what was already refunded; never negative.

    Partial: charge x remains / quantity. Canceled: the whole charge. Anything else: nothing. The one refund
    rule: every refund of an order, the worker's and the api's cancel alike, is this amount
    (`shared.ordering.settlement` applies it, `shared.db.accounts.pay_refunds` writes it).
    """
    if state is OrderState.CANCELED:
        total = order.charge
    elif state is OrderState.PARTIAL:
        total = partial_refund(order.charge, remains or 0, order.quantity)
    else:
        return ZERO
    return max(ZERO, total - order.refunded)


def observe(order: OrderView, seen: Observation) -> Outcome:
    """Apply an upstream status to an in-flight order. Terminal orders never change again."""
    if order.state not in IN_FLIGHT:
        return Outcome(order.state, order.start_count, order.remains, ZERO, held="order is not in flight")
    state = UPSTREAM_ORDER_STATES.get(seen.status)
    if state is None:
        return Outcome(order.state, order.start_count, order.remains, ZERO, held=f"unknown status {seen.status!r}")
    start_count = seen.start_count if seen.start_count is not None else order.start_count
    remains = seen.remains if seen.remains is not None else order.remains
    # A subscription ends "Completed" even when posts were missed; what was not delivered is refunded.
    if state is OrderState.COMPLETED and order.type == SUBSCRIPTIONS and (seen.remains or 0) > 0:
        state = OrderState.PARTIAL
    if state is OrderState.PARTIAL and seen.remains is None:
        # The refund is a share of remains: without them, wait for a readable answer rather than guess.
        return Outcome(order.state, start_count, order.remains, ZERO, held="Partial without remains")
    if state is OrderState.COMPLETED and remains is None:
        remains = 0
    if state is OrderState.CANCELED and seen.remains is None:
        remains = order.quantity  # nothing was delivered
    return Outcome(state, start_count, remains, refund_owed(order, state, remains))


def events_for(previous: OrderState, new: OrderState) -> list[EventType]:
    """`order.status_changed` for every change of the public status, plus the terminal state's own event."""
    if previous == new:
        return []
    events = []
    if public_order_status(previous) != public_order_status(new):
        events.append(EventType.ORDER_STATUS_CHANGED)
    if new in TERMINAL:
        events.append(_TERMINAL_EVENTS[new])
    return events


def status_event(
    order: OrderView, *, state: OrderState, refunded: Decimal, start_count: int | None, remains: int | None
) -> OrderStatusChanged:
    """The body of the order events: the account, the order, and what `status` answers for it after the change."""
    shown = OrderStatus.of(
        state=state,
        charge=order.charge,
        refunded=refunded,
        quantity=order.quantity,
        start_count=start_count,
        remains=remains,
        currency=order.currency,
    )
    return OrderStatusChanged(order.account_id, order.id, shown)


def refill_state(upstream_status: str) -> RefillState | None:
    return UPSTREAM_REFILL_STATES.get(upstream_status)


@dataclass(frozen=True)
class PollSchedule:
    """Backoff of status checks: young orders often, old ones rarely (the delay grows with the age)."""

    min_s: float = 5.0
    max_s: float = 1800.0
    # The delay is this share of the order's age: with 0.1 an order 10 min old is checked once a minute.
    age_factor: float = 0.1
    jitter: float = 0.1

    def delay(self, age_s: float, rng: random.Random | None = None) -> float:
        base = min(self.max_s, max(self.min_s, age_s * self.age_factor))
        if self.jitter <= 0:
            return base
        # Spread the checks of orders placed together so they do not come due as one wave forever.
        return base * (1 + self.jitter * ((rng or random).random() * 2 - 1))


@dataclass(frozen=True)
class RetrySchedule:
    """Exponential backoff of submission retries (upstream out of funds, or unreachable)."""

    base_s: float = 10.0
    max_s: float = 900.0

    def delay(self, attempts: int) -> float:
        return float(min(self.max_s, self.base_s * 2 ** max(0, attempts - 1)))


def upstream_add_params(
    *, provider_service_id: str, request_id: str, link: str | None, params: dict[str, Any]
) -> dict[str, str]:
    """The API v2 `add` parameters that buy this order upstream, from its normalised parameters.

    Line lists go back to newline-separated text, dates back to the contract's d/m/Y. Drip-feed (`runs`,
    `interval`) goes along as placed: the api accepts it only for services whose upstream supports it.
    `request_id` makes our own retries idempotent at upstreams that honour it (the contract requires it).
    """
    out = {"service": provider_service_id, "request_id": request_id}
    if link is not None:
        out["link"] = link
    for name, value in params.items():
        if isinstance(value, list):
            out[name] = "\n".join(str(v) for v in value)
        elif name == "expiry" and isinstance(value, str) and len(value) == 10 and value[4] == "-":
            year, month, day = value.split("-")
            out[name] = f"{day}/{month}/{year}"
        else:
            out[name] = str(value)
    return out


def upstream_request_id(order_id: int, created_us: int) -> str:
    """Our idempotency key at the upstream: stable for the order, unique across databases that reuse ids."""
    return f"pf-{order_id}-{created_us}"
