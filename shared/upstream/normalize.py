"""Turn what real panels answer into the contract's strings and types. Pure: no I/O, no aiohttp.

Panels in the wild drift from the contract: `Cancelled`, `completed`, `In Progress`, `"remains": "Unknown"`,
numbers as ints or strings or floats, booleans as `1`/`"0"`. Everything the upstream client returns has
passed through here, so the rest of panelflow sees exactly the contract's values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from shared.domain.bounds import INT4, INT8, bounded_decimal, bounded_int, external_text, fits_numeric
from shared.domain.order_types import ORDER_TYPES
from shared.upstream.results import (
    IdError,
    NotSent,
    OrderReport,
    OutOfFunds,
    RefillReport,
    Refused,
    UpstreamService,
)

_ORDER_STATUSES = {
    "pending": "Pending",
    "inprogress": "In progress",
    "processing": "Processing",
    "completed": "Completed",
    "complete": "Completed",
    "partial": "Partial",
    "canceled": "Canceled",
    "cancelled": "Canceled",
    # Perfect Panel forks report a cancelled-and-refunded order as "Refunded".
    "refunded": "Canceled",
}
_REFILL_STATUSES = {
    "pending": "Pending",
    "inprogress": "In progress",
    "processing": "In progress",
    "completed": "Completed",
    "complete": "Completed",
    "rejected": "Rejected",
    "canceled": "Canceled",
    "cancelled": "Canceled",
}
RATE_COLUMN = (20, 5)
_TYPES = {re.sub(r"[\s_-]+", "", name.lower()): name for name in ORDER_TYPES}

# Substrings (lower case) of `{"error"}` messages that mean our balance at the upstream is too low.
_FUNDS_MARKERS = ("not enough funds", "insufficient funds", "insufficient balance", "low balance", "not enough balance")
# ... and of messages about our account or call rate rather than the order: the order was not looked at.
_ACCOUNT_MARKERS = (
    "invalid api key",
    "incorrect api key",
    "api key",
    "account suspended",
    "account is suspended",
    "account disabled",
    "rate limit",
    "too many requests",
    "maintenance",
)


def _squash(value: str) -> str:
    return re.sub(r"[\s_-]+", "", value.strip().lower())


def order_status(value: Any) -> str | None:
    """The contract's order status for what the upstream said, or None when it is unrecognisable."""
    if not isinstance(value, str):
        return None
    return _ORDER_STATUSES.get(_squash(value))


def refill_status(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return _REFILL_STATUSES.get(_squash(value))


def order_type(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return _TYPES.get(_squash(value))


def to_int(value: Any) -> int | None:
    """`157`, `"157"`, `"157.0"`, `157.0` -> 157; `"Unknown"`, `""`, None, garbage, and numbers a BIGINT
    cannot hold (`"1e1000000"`: refused on its shape, never converted) -> None."""
    return bounded_int(value, INT8)


def to_decimal(value: Any) -> Decimal | None:
    """A JSON number or numeric string as an exact Decimal (floats via their repr, never binary arithmetic);
    None for garbage and for numbers out of any column's range (see `shared.domain.bounds`)."""
    return bounded_decimal(value)


def to_text(value: Any, *, limit: int = 1000) -> str:
    """An upstream's text (error message, status, names) fit to store: NUL, control characters and invalid
    UTF-8 replaced, at most `limit` characters."""
    return external_text(value, limit=limit)


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return False


def error_message(body: Any) -> str | None:
    """The message of an `{"error": ...}` body, or None when the body is no such thing."""
    if isinstance(body, Mapping) and "error" in body:
        return to_text(body["error"])
    return None


def classify_error(message: str) -> Refused | OutOfFunds | NotSent:
    """What a definite `{"error"}` answer to `add`/`refill` means for the order."""
    lowered = message.lower()
    if any(marker in lowered for marker in _FUNDS_MARKERS):
        return OutOfFunds(message)
    if any(marker in lowered for marker in _ACCOUNT_MARKERS):
        return NotSent(f"upstream turned the call away: {message}")
    return Refused(message)


def order_report(raw: Any) -> OrderReport | IdError:
    """One entry of a `status` answer."""
    message = error_message(raw)
    if message is not None:
        return IdError(message)
    if not isinstance(raw, Mapping):
        return IdError(to_text(f"unreadable status entry: {raw!r}"[:200]))
    status = order_status(raw.get("status"))
    if status is None:
        return IdError(to_text(f"unrecognised status: {raw.get('status')!r}"[:200]))
    currency = raw.get("currency")
    return OrderReport(
        status=status,
        charge=to_decimal(raw.get("charge")),
        start_count=to_int(raw.get("start_count")),
        remains=to_int(raw.get("remains")),
        currency=to_text(currency, limit=16) if isinstance(currency, str) else None,
    )


def refill_report(raw: Any) -> RefillReport | IdError:
    """The `status` of a `refill_status` answer (a string, or `{"error"}`)."""
    message = error_message(raw)
    if message is not None:
        return IdError(message)
    status = refill_status(raw)
    if status is None:
        return IdError(to_text(f"unrecognised refill status: {raw!r}"[:200]))
    return RefillReport(status)


def upstream_service(raw: Any) -> UpstreamService | None:
    """One entry of a `services` answer, or None when it cannot be sold (unknown type, no id, bad numbers)."""
    if not isinstance(raw, Mapping):
        return None
    service_id = raw.get("service")
    type_ = order_type(raw.get("type", "Default"))
    rate = to_decimal(raw.get("rate"))
    # Our catalog's columns: min/max INTEGER, rates NUMERIC(20, 5). A service out of them cannot be sold.
    low, high = bounded_int(raw.get("min"), INT4), bounded_int(raw.get("max"), INT4)
    if service_id is None or isinstance(service_id, bool) or type_ is None or rate is None or rate < 0:
        return None
    if not fits_numeric(rate, *RATE_COLUMN):
        return None
    if low is None or high is None or low < 0 or high < low:
        return None
    name, category = raw.get("name"), raw.get("category")
    return UpstreamService(
        service=to_text(service_id, limit=128).strip(),
        name=to_text(name).strip() if name is not None else f"Service {to_text(service_id, limit=128)}",
        type=type_,
        category=to_text(category).strip() if category is not None else "",
        rate=rate,
        min=low,
        max=high,
        refill=to_bool(raw.get("refill")),
        cancel=to_bool(raw.get("cancel")),
        dripfeed=to_bool(raw.get("dripfeed")),
    )
