"""The `webhooks` section describes the bodies the dispatcher really sends: events built by the code that builds
them (the worker's settlement and refills), turned into a body as the dispatcher does, validate against it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from shared.apidoc.document import build
from shared.db.accounts import LowBalance
from shared.db.refills import RefillClaim
from shared.domain.events import Event, EventType
from shared.domain.lifecycle import OrderView
from shared.domain.statuses import OrderState, RefillState
from shared.ordering.settlement import Settlement
from shared.settings import Settings
from shared.webhooks.ingest import event_data
from shared.webhooks.sender import message_body
from shared.worker.refills import refill_event

DOCUMENT = build(Settings.model_construct())


def body_schema(event_type: str) -> dict[str, Any]:
    operation = DOCUMENT["webhooks"][event_type]["post"]
    return operation["requestBody"]["content"]["application/json"]["schema"]


def sent_body(event: Event) -> Any:
    data = json.loads(event_data(event.payload))
    return json.loads(message_body(str(event.type), datetime.now(UTC), data))


def order(**changes: Any) -> OrderView:
    fields: dict[str, Any] = {
        "id": 23501, "account_id": 7, "type": "Default", "state": OrderState.IN_PROGRESS, "quantity": 1000,
        "charge": Decimal("0.9"), "refunded": Decimal("0"), "currency": "USD",
    }  # fmt: skip
    return OrderView(**{**fields, **changes})


def settled_events() -> list[Event]:
    settlement = Settlement()
    settlement.order_moved(
        order(state=OrderState.PENDING), state=OrderState.IN_PROGRESS, start_count=None, remains=None
    )
    settlement.order_moved(order(), state=OrderState.PARTIAL, start_count=3572, remains=157)
    settlement.order_moved(order(), state=OrderState.COMPLETED, start_count=10, remains=0)
    settlement.order_moved(order(), state=OrderState.CANCELED, start_count=None, remains=1000)
    settlement.low_balance([LowBalance(7, Decimal("1.5"), Decimal("10"), "USD")])
    claim = RefillClaim(id=3, order_id=23501, account_id=7, provider_id=None, provider_order_id=None, allowed=True,
                        attempt=1, correlation_id=None)  # fmt: skip
    return [*settlement.events, refill_event(claim, RefillState.COMPLETED)]


EVENTS = settled_events()


def test_every_kind_of_event_is_exercised() -> None:
    # Every subscriber event but webhook.test (built by the api: tests/api/test_answers_documented.py).
    assert {str(e.type) for e in EVENTS} == set(DOCUMENT["webhooks"]) - {EventType.WEBHOOK_TEST}


@pytest.mark.parametrize("event", EVENTS, ids=[f"{e.type}-{i}" for i, e in enumerate(EVENTS)])
def test_a_sent_body_matches_its_documented_schema(event: Event) -> None:
    schema = {**body_schema(str(event.type)), "components": DOCUMENT["components"]}
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in Draft202012Validator(schema).iter_errors(sent_body(event))
    ]
    assert errors == []


def test_the_schema_refuses_what_is_not_sent() -> None:
    event = EVENTS[0]
    body = sent_body(event)
    body["data"]["charge"] = 0.9  # money as a float
    schema = {**body_schema(str(event.type)), "components": DOCUMENT["components"]}
    assert not Draft202012Validator(schema).is_valid(body)
