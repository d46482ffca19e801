"""Order and refill states: the internal ones, and the contract's public strings they map onto."""

from __future__ import annotations

from enum import StrEnum


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


def public_order_status(state: str) -> str:
    return _PUBLIC[OrderState(state)]


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
