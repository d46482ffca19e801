"""How orders look in API answers: the contract's `status` shape, built by the domain (`OrderStatus`), the same
one the order events carry."""

from __future__ import annotations

from shared.db.orders.reads import StatusColumns
from shared.domain.statuses import OrderStatus


def status_answer(columns: StatusColumns) -> dict[str, str]:
    """The `status` action's entry of one order, from `shared.db.orders.reads.status_columns`."""
    return OrderStatus.answer_of(*columns)
