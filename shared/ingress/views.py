"""How orders look in API answers and in the events the api writes (the contract's `status` shape)."""

from __future__ import annotations

from typing import Any

from shared.db.orders import OrderStatusRow
from shared.domain.money import format_charge
from shared.domain.statuses import OrderState, public_order_status


def remains_of(row: OrderStatusRow) -> int:
    if row.remains is not None:
        return row.remains
    # Not reported by the upstream yet: nothing delivered, unless the order is complete.
    return 0 if row.status == OrderState.COMPLETED else row.quantity


def order_status(row: OrderStatusRow) -> dict[str, str]:
    return {
        "charge": format_charge(row.charge - row.refunded),
        "start_count": str(row.start_count or 0),
        "status": public_order_status(row.status),
        "remains": str(remains_of(row)),
        "currency": row.currency,
    }


def status_event_payload(account_id: int, row: OrderStatusRow) -> dict[str, Any]:
    """The payload of `order.status_changed` and friends, as the worker writes it too."""
    return {
        "account_id": account_id,
        "order": row.id,
        "status": public_order_status(row.status),
        "charge": format_charge(row.charge - row.refunded),
        "remains": None if row.remains is None else str(row.remains),
        "start_count": None if row.start_count is None else str(row.start_count),
        "currency": row.currency,
    }
