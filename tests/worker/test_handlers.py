"""`order.placed` payloads: one event names a whole placement batch (`order_ids`); older single-order events
(`order_id`) still parse; anything else is malformed (dead-lettered at once, never retried)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared.messaging.envelope import Envelope, MalformedMessage
from shared.worker.handlers import placed_orders


def placed(payload: dict[str, Any]) -> Envelope:
    return Envelope(uuid.uuid4(), "order.placed", payload, None, 0)


def test_a_batch_event_names_every_order_of_the_batch() -> None:
    assert placed_orders(placed({"order_ids": [3, 1, 2]})) == [3, 1, 2]


def test_a_single_order_event_from_before_batches_still_parses() -> None:
    assert placed_orders(placed({"order_id": 7, "account_id": 1})) == [7]
    assert placed_orders(placed({"order_id": "7"})) == [7]


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
        {},
    ],
)
def test_anything_else_is_malformed(payload: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        placed_orders(placed(payload))
