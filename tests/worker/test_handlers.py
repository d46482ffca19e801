"""The worker's messages, decoded by their typed contracts: `order.placed` names a whole placement batch
(`order_ids`); older single-order events (`order_id`) still parse; anything else is malformed (dead-lettered at
once, never retried). The handler is a table from event type to use case."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared.domain.events import WORKER_EVENTS, CancelRequested, OrderPlaced, RefillRequested
from shared.messaging.envelope import Envelope, MalformedMessage
from shared.worker.handlers import WorkerHandlers, typed


def envelope(event_type: str, payload: dict[str, Any]) -> Envelope:
    return Envelope(uuid.uuid4(), event_type, payload, None, 0)


def placed(payload: dict[str, Any]) -> Envelope:
    return envelope("order.placed", payload)


def test_a_batch_event_names_every_order_of_the_batch() -> None:
    assert typed(placed({"order_ids": [3, 1, 2]})) == OrderPlaced((3, 1, 2))


def test_a_single_order_event_from_before_batches_still_parses() -> None:
    assert typed(placed({"order_id": 7, "account_id": 1})) == OrderPlaced((7,))
    assert typed(placed({"order_id": "7"})) == OrderPlaced((7,))


def test_commands_decode_to_their_dataclasses() -> None:
    assert typed(envelope("refill.requested", {"refill_id": 4, "order_id": 9, "account_id": 2})) == RefillRequested(
        4, 9, 2
    )
    assert typed(envelope("cancel.requested", {"order_id": 9, "account_id": 2})) == CancelRequested(9, 2)


@pytest.mark.parametrize(
    "payload",
    [
        {"order_ids": []},
        {"order_ids": "1,2"},
        {"order_ids": [1, "2"]},
        {"order_ids": [1, True]},
        {"order_ids": [0]},
        {"order_ids": [-4]},
        {"order_ids": [1.5]},
        {"order_id": "not-a-number"},
        {"order_id": True},
        {},
    ],
)
def test_anything_else_is_malformed(payload: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        typed(placed(payload))


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("refill.requested", {"order_id": 9, "account_id": 2}),
        ("refill.requested", {"refill_id": "x", "order_id": 9, "account_id": 2}),
        ("cancel.requested", {"account_id": 2}),
        ("cancel.requested", {"order_id": None, "account_id": 2}),
    ],
)
def test_malformed_commands_are_dead_lettered(event_type: str, payload: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        typed(envelope(event_type, payload))


def test_every_worker_event_has_a_handler() -> None:
    handlers = WorkerHandlers(None, None, None)  # type: ignore[arg-type]
    assert set(handlers.table) == {str(t) for t in WORKER_EVENTS}
