"""What the upstream client hands back: `add`/`refill` outcomes, normalised status reports, and its errors.

The `add` classification is what the worker's exactly-once logic rests on:

- `Accepted(provider_order_id)`: the upstream created the order and said so. Worker: store the id, capture.
- `Refused(message)`: a definite `{"error"}` about this order ("Incorrect link", "Incorrect service ID",
  "Quantity less than minimal 50"). Worker: cancel, full refund.
- `OutOfFunds(message)`: our balance at the upstream is too low ("Not enough funds on balance").
  Worker: stay pending, retry with backoff, alert.
- `NotSent(reason)`: the upstream provably did not create it: no request left us (connection refused, DNS,
  connect timeout, breaker open, no free slot in time), or the upstream turned the call away before looking at
  the order (HTTP 401/403/429, "Invalid API key", account suspended). Worker: stay pending, retry with backoff.
- `Unknown(reason)`: the request (maybe) reached the upstream and no readable answer came back: total timeout,
  connection lost after sending, HTTP 5xx, a non-JSON or unexpected body. Worker: park, never resubmit.

"Sent" is decided by aiohttp's `on_request_headers_sent` trace signal: any failure after the first byte of the
request may have been written is `Unknown`, never `NotSent`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypeAlias


@dataclass(frozen=True)
class Accepted:
    provider_order_id: str


@dataclass(frozen=True)
class Refused:
    message: str


@dataclass(frozen=True)
class OutOfFunds:
    message: str


@dataclass(frozen=True)
class NotSent:
    reason: str


@dataclass(frozen=True)
class Unknown:
    reason: str


AddResult: TypeAlias = Accepted | Refused | OutOfFunds | NotSent | Unknown


@dataclass(frozen=True)
class RefillAccepted:
    provider_refill_id: str


RefillResult: TypeAlias = RefillAccepted | Refused | OutOfFunds | NotSent | Unknown


@dataclass(frozen=True)
class IdError:
    """One id of a batch call that the upstream answered with its own `{"error"}` (or left out)."""

    message: str


@dataclass(frozen=True)
class OrderReport:
    """One order's status as the upstream reported it, normalised to the contract's strings and types."""

    status: str  # Pending | In progress | Processing | Completed | Partial | Canceled
    charge: Decimal | None
    start_count: int | None
    remains: int | None  # None: the upstream did not say ("Unknown", missing)
    currency: str | None


@dataclass(frozen=True)
class RefillReport:
    status: str  # Pending | In progress | Completed | Rejected | Canceled


@dataclass(frozen=True)
class UpstreamService:
    service: str  # the upstream's id, kept as text (our `provider_service_id`)
    name: str
    type: str  # one of the contract's order types
    category: str
    rate: Decimal
    min: int
    max: int
    refill: bool
    cancel: bool
    dripfeed: bool


@dataclass(frozen=True)
class Balance:
    amount: Decimal
    currency: str


class UpstreamError(Exception):
    """A call other than `add`/`refill` did not give a usable answer."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class UpstreamUnreachable(UpstreamError):
    """Nothing reached the upstream (connection refused, breaker open, ...): safe to call again later."""


class UpstreamBadReply(UpstreamError):
    """The call went out but no readable answer came back (timeout, 5xx, garbage)."""


class UpstreamRejected(UpstreamError):
    """The upstream answered the whole call with `{"error": message}`."""
