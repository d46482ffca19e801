"""What the sync and async clients share: the forms they send, how answers become values or typed errors,
the retry policy and the batch splitting. No I/O here."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from panelflow_client.errors import (
    PanelflowError,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TransportError,
    error_for,
)

BATCH_MAX = 100  # ids per `status`/`refill`/`refill_status`/`cancel` call (the API refuses more)
USER_AGENT = "panelflow-client-python/0.1.0"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Service:
    service: int
    name: str
    type: str
    category: str
    rate: Decimal
    min: int
    max: int
    refill: bool
    cancel: bool
    dripfeed: bool


@dataclass(frozen=True, slots=True)
class OrderStatus:
    status: str
    charge: Decimal
    start_count: int | None
    remains: int | None
    currency: str


@dataclass(frozen=True, slots=True)
class Balance:
    balance: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of connection errors, 429 and 503: up to `attempts` tries in all; the wait before try n+1 is
    the server's `Retry-After` when it sent one, otherwise `base * 2**(n-1)` with full jitter, at most `cap`.
    A `Retry-After` longer than `max_wait` is not waited for: the error is raised at once."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    max_wait: float = 120.0

    def delay(self, attempt: int, error: PanelflowError) -> float | None:
        """Seconds to wait before the next try, or None when `error` is final."""
        if attempt >= self.attempts or not isinstance(error, RateLimited | ServiceUnavailable | TransportError):
            return None
        retry_after = error.retry_after if isinstance(error, RateLimited) else None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_wait else None
        return random.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))


def new_request_id() -> str:
    return "py-" + uuid.uuid4().hex


def chunks(ids: Iterable[int | str], size: int = BATCH_MAX) -> Iterator[list[str]]:
    batch: list[str] = []
    for value in ids:
        batch.append(str(value))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def interpret(status: int, headers: Mapping[str, str], body: bytes) -> Any:
    """The answer's JSON value; raises the typed error of an `{"error": ...}` answer (whatever its status)."""
    try:
        value = json.loads(body)
    except ValueError:
        raise ServerError(f"HTTP {status}: the answer is not JSON", status) from None
    if isinstance(value, dict) and set(value) == {"error"}:
        # A classic key's errors come with 200 and the status they stand for in X-Error-Status.
        error = error_for(_error_status(status, headers.get("X-Error-Status")), str(value["error"]))
        if isinstance(error, RateLimited):
            error.retry_after = _seconds(headers.get("Retry-After"))
        raise error
    if status != 200:
        raise error_for(status, f"HTTP {status}")
    return value


def _error_status(status: int, header: str | None) -> int:
    if status == 200 and header is not None and header.isdigit():
        return int(header)
    return status


def _seconds(header: str | None) -> float | None:
    try:
        return None if header is None else max(0.0, float(header))
    except ValueError:
        return None


def item_error(value: Any) -> PanelflowError | None:
    """The error of one id in a batch answer (`{"error": ...}` in place of its result)."""
    if isinstance(value, dict) and "error" in value:
        return PanelflowError(str(value["error"]), 200)
    return None


def to_service(v: Mapping[str, Any]) -> Service:
    return Service(
        service=int(v["service"]),
        name=str(v["name"]),
        type=str(v["type"]),
        category=str(v.get("category", "")),
        rate=Decimal(str(v["rate"])),
        min=int(v["min"]),
        max=int(v["max"]),
        refill=bool(v.get("refill", False)),
        cancel=bool(v.get("cancel", False)),
        dripfeed=bool(v.get("dripfeed", False)),
    )


def to_status(v: Mapping[str, Any]) -> OrderStatus:
    return OrderStatus(
        status=str(v["status"]),
        charge=Decimal(str(v["charge"])),
        start_count=_optional_int(v.get("start_count")),
        remains=_optional_int(v.get("remains")),
        currency=str(v.get("currency", "")),
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def to_balance(v: Mapping[str, Any]) -> Balance:
    return Balance(balance=Decimal(str(v["balance"])), currency=str(v["currency"]))


def add_form(service: int, request_id: str, params: Mapping[str, object]) -> dict[str, str]:
    form = {"action": "add", "service": str(service), "request_id": request_id}
    for name, value in params.items():
        if value is not None:
            form[name] = "\n".join(value) if isinstance(value, list | tuple) else str(value)
    return form


# Batch answers, merged over the calls of one helper call: id -> value or the error of that id.
def merge_statuses(answer: Mapping[str, Any], into: dict[int, OrderStatus | PanelflowError]) -> None:
    for token, value in answer.items():
        into[int(token)] = item_error(value) or to_status(value)


def merge_list(
    answer: list[dict[str, Any]], id_field: str, value_field: str, parse: Callable[[Any], T], into: dict[int, Any]
) -> None:
    for entry in answer:
        value = entry[value_field]
        into[int(entry[id_field])] = item_error(value) or parse(value)
