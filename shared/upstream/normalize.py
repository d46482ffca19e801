"""Turn what real panels answer into the contract's strings and types. Pure: no I/O, no aiohttp.

Panels in the wild drift from the contract: `Cancelled`, `completed`, `In Progress`, `"remains": "Unknown"`,
numbers as ints or strings or floats, booleans as `1`/`"0"`. Everything the upstream client returns has
passed through here, so the rest of panelflow sees exactly the contract's values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

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
    """`157`, `"157"`, `"157.0"`, `157.0` -> 157; `"Unknown"`, `""`, None, garbage -> None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    number = to_decimal(value)
    if number is None or number != number.to_integral_value():
        return None
    return int(number)


def to_decimal(value: Any) -> Decimal | None:
    """A JSON number or numeric string as an exact Decimal (floats via their repr, never binary arithmetic)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int | float):
        number = Decimal(str(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip().replace(",", "."))
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None


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
        error = body["error"]
        return error if isinstance(error, str) else str(error)
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
        return IdError(f"unreadable status entry: {raw!r}"[:200])
    status = order_status(raw.get("status"))
    if status is None:
        return IdError(f"unrecognised status: {raw.get('status')!r}"[:200])
    currency = raw.get("currency")
    return OrderReport(
        status=status,
        charge=to_decimal(raw.get("charge")),
        start_count=to_int(raw.get("start_count")),
        remains=to_int(raw.get("remains")),
        currency=currency if isinstance(currency, str) else None,
    )


def refill_report(raw: Any) -> RefillReport | IdError:
    """The `status` of a `refill_status` answer (a string, or `{"error"}`)."""
    message = error_message(raw)
    if message is not None:
        return IdError(message)
    status = refill_status(raw)
    if status is None:
        return IdError(f"unrecognised refill status: {raw!r}"[:200])
    return RefillReport(status)


def upstream_service(raw: Any) -> UpstreamService | None:
    """One entry of a `services` answer, or None when it cannot be sold (unknown type, no id, bad numbers)."""
    if not isinstance(raw, Mapping):
        return None
    service_id = raw.get("service")
    type_ = order_type(raw.get("type", "Default"))
    rate = to_decimal(raw.get("rate"))
    low, high = to_int(raw.get("min")), to_int(raw.get("max"))
    if service_id is None or isinstance(service_id, bool) or type_ is None or rate is None or rate < 0:
        return None
    if low is None or high is None or low < 0 or high < low:
        return None
    name, category = raw.get("name"), raw.get("category")
    return UpstreamService(
        service=str(service_id).strip(),
        name=str(name).strip() if name is not None else f"Service {service_id}",
        type=type_,
        category=str(category).strip() if category is not None else "",
        rate=rate,
        min=low,
        max=high,
        refill=to_bool(raw.get("refill")),
        cancel=to_bool(raw.get("cancel")),
        dripfeed=to_bool(raw.get("dripfeed")),
    )
