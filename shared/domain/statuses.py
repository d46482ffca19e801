"""Order and refill states: the internal ones, and the contract's public strings they map onto."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from shared.domain.money import format_charge, format_charge_text


class OrderState(StrEnum):
    PENDING = "pending"  # accepted, money reserved, not yet sent upstream
    SUBMITTING = "submitting"  # the upstream call is (or was) under way
    UNKNOWN = "unknown"  # the upstream call's outcome is unknown: parked for an operator
    IN_PROGRESS = "in_progress"
    PROCESSING = "processing"
    COMPLETED = "completed"
    PARTIAL = "partial"
    CANCELED = "canceled"


TERMINAL = frozenset({OrderState.COMPLETED, OrderState.PARTIAL, OrderState.CANCELED})
# Orders whose upstream order exists and whose progress is polled.
IN_FLIGHT = frozenset({OrderState.IN_PROGRESS, OrderState.PROCESSING})

_PUBLIC = {
    OrderState.PENDING: "Pending",
    OrderState.SUBMITTING: "Pending",
    OrderState.UNKNOWN: "Pending",
    OrderState.IN_PROGRESS: "In progress",
    OrderState.PROCESSING: "Processing",
    OrderState.COMPLETED: "Completed",
    OrderState.PARTIAL: "Partial",
    OrderState.CANCELED: "Canceled",
}


# The same map keyed by the stored text, for the per-order paths (no enum built per order).
_PUBLIC_BY_STATE: dict[str, str] = {state.value: shown for state, shown in _PUBLIC.items()}


def public_order_status(state: str) -> str:
    return _PUBLIC[OrderState(state)]


def _answer(
    state: str, charge: str, quantity: int, start_count: int | None, remains: int | None, currency: str
) -> dict[str, str]:
    """The contract's `status` entry of one order, keys in the contract's order; `charge` already formatted."""
    if remains is None:
        remains = 0 if state == "completed" else quantity
    return {
        "charge": charge,
        "start_count": str(start_count or 0),
        "status": _PUBLIC_BY_STATE[state],
        "remains": str(remains),
        "currency": currency,
    }


@dataclass(frozen=True)
class OrderStatus:
    """An order as the contract's `status` answers it, and as its status events carry it: the one place that
    turns an order's state and counters into the public strings.

    `charge` is after refunds; counters the upstream has not reported yet read as nothing delivered
    (`remains` = the quantity, or 0 once Completed) and `start_count` "0".
    """

    status: str
    charge: str
    start_count: str
    remains: str
    currency: str

    @classmethod
    def of(
        cls,
        *,
        state: str,
        charge: Decimal,
        refunded: Decimal,
        quantity: int,
        start_count: int | None,
        remains: int | None,
        currency: str,
    ) -> OrderStatus:
        return cls(**_answer(state, format_charge(charge - refunded), quantity, start_count, remains, currency))

    @staticmethod
    def answer_of(
        state: str, charge_left: str, quantity: int, start_count: int | None, remains: int | None, currency: str
    ) -> dict[str, str]:
        """`of(...).answer()` straight from an order's stored columns, without an object or a Decimal per order (the
        api's `status` path, up to 100 orders a call): `charge_left` is `charge - refunded` as Postgres prints a
        NUMERIC(20, 5), e.g. "1.50000"."""
        return _answer(state, format_charge_text(charge_left), quantity, start_count, remains, currency)

    def answer(self) -> dict[str, str]:
        """The `status` action's answer for one order."""
        return {
            "charge": self.charge,
            "start_count": self.start_count,
            "status": self.status,
            "remains": self.remains,
            "currency": self.currency,
        }


class RefillState(StrEnum):
    PENDING = "pending"
    SUBMITTING = "submitting"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELED = "canceled"


REFILL_TERMINAL = frozenset({RefillState.COMPLETED, RefillState.REJECTED, RefillState.CANCELED})
REFILL_OPEN = frozenset({RefillState.PENDING, RefillState.SUBMITTING, RefillState.IN_PROGRESS})

_PUBLIC_REFILL = {
    RefillState.PENDING: "Pending",
    RefillState.SUBMITTING: "Pending",
    RefillState.IN_PROGRESS: "In progress",
    RefillState.COMPLETED: "Completed",
    RefillState.REJECTED: "Rejected",
    RefillState.CANCELED: "Canceled",
}


def public_refill_status(state: str) -> str:
    return _PUBLIC_REFILL[RefillState(state)]
