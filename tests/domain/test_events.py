"""The typed event contracts: every event type has one, each round-trips through its payload, and a payload
that breaks the contract raises the one domain error (`MalformedEvent`) its consumer dead-letters."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shared.domain.events import (
    CONTRACTS,
    BalanceLow,
    CancelRequested,
    EventType,
    MalformedEvent,
    OrderPlaced,
    OrderStatusChanged,
    RefillRequested,
    RefillStatusChanged,
    WebhookTest,
    decode,
    event,
)
from shared.domain.statuses import OrderState, OrderStatus

SHOWN = OrderStatus.of(
    state=OrderState.PARTIAL,
    charge=Decimal("0.9"),
    refunded=Decimal("0.1413"),
    quantity=1000,
    start_count=3572,
    remains=157,
    currency="USD",
)

SAMPLES: dict[EventType, Any] = {
    EventType.ORDER_PLACED: OrderPlaced((5, 6, 7)),
    EventType.REFILL_REQUESTED: RefillRequested(refill_id=3, order_id=5, account_id=1),
    EventType.CANCEL_REQUESTED: CancelRequested(order_id=5, account_id=1),
    EventType.ORDER_STATUS_CHANGED: OrderStatusChanged(1, 5, SHOWN),
    EventType.ORDER_COMPLETED: OrderStatusChanged(1, 5, SHOWN),
    EventType.ORDER_PARTIAL: OrderStatusChanged(1, 5, SHOWN),
    EventType.ORDER_CANCELED: OrderStatusChanged(1, 5, SHOWN),
    EventType.REFILL_STATUS_CHANGED: RefillStatusChanged(account_id=1, refill=3, order=5, status="Completed"),
    EventType.BALANCE_LOW: BalanceLow(1, balance=Decimal("4.25"), threshold=Decimal("10.00"), currency="USD"),
    EventType.WEBHOOK_TEST: WebhookTest(account_id=1, webhook=8),
}


def test_every_event_type_has_a_dataclass() -> None:
    missing = [t for t in EventType if t not in CONTRACTS]
    assert missing == []
    for contract in set(CONTRACTS.values()):
        assert contract.__dataclass_params__.frozen, contract
        assert CONTRACTS[contract.TYPE] is contract  # the type it names maps back to it


def test_samples_cover_every_event_type() -> None:
    assert set(SAMPLES) == set(EventType)


@pytest.mark.parametrize("event_type", list(EventType))
def test_round_trip(event_type: EventType) -> None:
    sample = SAMPLES[event_type]
    payload = sample.to_payload()
    assert decode(event_type, payload) == sample
    assert type(sample).from_payload(payload) == sample
    built = event(event_type, sample, correlation_id="c-1")
    assert (built.type, built.payload, built.correlation_id) == (event_type, payload, "c-1")


def test_order_event_payload_is_the_status_answer_with_account_and_order() -> None:
    assert OrderStatusChanged(1, 5, SHOWN).to_payload() == {"account_id": 1, "order": 5, **SHOWN.answer()}
    assert SHOWN.answer() == {
        "charge": "0.7587",
        "start_count": "3572",
        "status": "Partial",
        "remains": "157",
        "currency": "USD",
    }


def test_balance_low_carries_money_as_strings() -> None:
    assert SAMPLES[EventType.BALANCE_LOW].to_payload() == {
        "account_id": 1,
        "balance": "4.25",
        "threshold": "10.00",
        "currency": "USD",
    }


def test_the_single_order_placed_shape_of_older_releases_is_read() -> None:
    assert OrderPlaced.from_payload({"order_id": 7}) == OrderPlaced((7,))
    assert OrderPlaced.from_payload({"order_id": 7}).to_payload() == {"order_ids": [7]}


def test_a_body_under_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError):
        event(EventType.BALANCE_LOW, CancelRequested(order_id=5, account_id=1))


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        (EventType.ORDER_PLACED, []),
        (EventType.ORDER_PLACED, {"order_ids": [2, 2.0]}),
        (EventType.REFILL_REQUESTED, {"refill_id": 3, "order_id": 5}),
        (EventType.CANCEL_REQUESTED, {"order_id": "5x", "account_id": 1}),
        (EventType.ORDER_STATUS_CHANGED, {**SAMPLES[EventType.ORDER_STATUS_CHANGED].to_payload(), "remains": None}),
        (EventType.ORDER_COMPLETED, {"account_id": 1, "order": 5}),
        (EventType.REFILL_STATUS_CHANGED, {"account_id": 1, "refill": 3, "order": 5, "status": 1}),
        (EventType.BALANCE_LOW, {"account_id": 1, "balance": "lots", "threshold": "1", "currency": "USD"}),
        (EventType.BALANCE_LOW, {"account_id": 1, "balance": "NaN", "threshold": "1", "currency": "USD"}),
        (EventType.BALANCE_LOW, {"account_id": 1, "balance": 4.25, "threshold": "1", "currency": "USD"}),
        (EventType.WEBHOOK_TEST, {"account_id": 0, "webhook": 8, "message": "hi"}),
        ("no.such.event", {}),
    ],
)
def test_malformed_payloads_raise_the_domain_error(event_type: str, payload: Any) -> None:
    with pytest.raises(MalformedEvent):
        decode(event_type, payload)
