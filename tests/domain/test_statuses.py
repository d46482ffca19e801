"""`OrderStatus.answer_of` (the api's per-order path, from stored columns) answers what `OrderStatus.of(...)
.answer()` (the events' path, from Decimals) does, for every state and counter shape."""

from __future__ import annotations

import itertools
from decimal import Decimal

from shared.domain.statuses import OrderState, OrderStatus


def test_answer_of_the_columns_is_the_answer_of_the_order() -> None:
    charges = [("0.09", "0"), ("2", "2"), ("0.9", "0.225"), ("123456789012345.12345", "0.00005"), ("1", "0.99999")]
    counters = [(None, None), (0, 0), (3572, 250), (10, None)]
    for state, (charge, refunded), (start_count, remains) in itertools.product(OrderState, charges, counters):
        left = Decimal(charge) - Decimal(refunded)
        columns = (str(state.value), f"{left:.5f}", 1000, start_count, remains, "USD")
        shown = OrderStatus.of(
            state=state.value, charge=Decimal(charge), refunded=Decimal(refunded), quantity=1000,
            start_count=start_count, remains=remains, currency="USD",
        )  # fmt: skip
        answer = OrderStatus.answer_of(*columns)
        assert answer == shown.answer()
        assert list(answer) == ["charge", "start_count", "status", "remains", "currency"]
