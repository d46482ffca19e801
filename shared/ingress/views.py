"""How orders look in API answers: the contract's `status` shape, built by the domain (`OrderStatus`), the same
one the order events carry."""

from __future__ import annotations

from shared.db.orders.reads import OrderStatusRow, StatusColumns
from shared.domain.statuses import OrderStatus


def order_status(row: OrderStatusRow) -> dict[str, str]:
    return OrderStatus.of(
        state=row.status,
        charge=row.charge,
        refunded=row.refunded,
        quantity=row.quantity,
        start_count=row.start_count,
        remains=row.remains,
        currency=row.currency,
    ).answer()


def status_answer(columns: StatusColumns) -> dict[str, str]:
    """The `status` action's entry of one order, from `shared.db.orders.reads.status_columns`."""
    return OrderStatus.answer_of(*columns)
