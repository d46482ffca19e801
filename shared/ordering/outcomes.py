"""What each placement request gets: its new order, the original order of a replay, or the error to raise.

A batch of requests is placed by one set-based statement (`shared.db.placement.place_batch`, one transaction);
its per-row outcome is turned into each request's answer here, and the few requests the statement could not
settle in the batch (the running sum of a balance, a request_id another batch committed meanwhile) are placed
again alone. Connection errors propagate: the batch is re-run on another connection or answered 503 as a whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
import structlog

from shared.db import placement as sql
from shared.db.types import Conn
from shared.domain.order_types import OrderDraft
from shared.errors import AccountSuspended, DependencyDown, InsufficientBalance, RequestIdConflict, ServiceNotFound
from shared.observability import metrics
from shared.ordering.kept_connections import CONNECTION_ERRORS

log = structlog.get_logger(__name__)

# A request re-run alone is re-run at most this often (a winner that vanishes again and again is a bug).
_SINGLE_ATTEMPTS = 3

Result = int | BaseException


@dataclass(frozen=True)
class PlacementRequest:
    account_id: int
    request_id: str
    params_hash: bytes
    draft: OrderDraft
    currency: str
    correlation_id: str


async def place_requests(conn: Conn, requests: Sequence[PlacementRequest]) -> list[Result]:
    """Each request's outcome, in order: an order id or the error to raise.

    Duplicates of one (account, request_id) share the outcome of the first; one with other parameters is settled
    after it (it then meets the original: 409, or is placed if the first failed).
    """
    firsts: dict[tuple[int, str], int] = {}
    followers: list[tuple[int, int]] = []
    later: list[int] = []
    for i, req in enumerate(requests):
        first = firsts.setdefault((req.account_id, req.request_id), i)
        if first == i:
            continue
        if requests[first].params_hash == req.params_hash:
            followers.append((i, first))
        else:
            later.append(i)
    leaders = list(firsts.values())
    results: list[Result | None] = [None] * len(requests)
    for i, result in zip(leaders, await _place_distinct(conn, [requests[i] for i in leaders]), strict=True):
        results[i] = result
    for i, first in followers:
        results[i] = results[first]
    for i in later:
        results[i] = (await _place_distinct(conn, [requests[i]]))[0]
    return [r if r is not None else RuntimeError("placement left a request unsettled") for r in results]


async def existing_order(conn: Conn, *, account_id: int, request_id: str, params_hash: bytes) -> int | None:
    """For the api's validation-failure path: the original order id if this request_id was already placed with
    the same params_hash; raises RequestIdConflict if placed with different params; None if never placed."""
    try:
        found = await sql.find_order(conn, account_id=account_id, request_id=request_id)
    except CONNECTION_ERRORS as exc:
        raise DependencyDown() from exc
    if found is None:
        return None
    if found[1] != params_hash:
        raise RequestIdConflict()
    metrics.API_IDEMPOTENT_REPLAYS.inc()
    return found[0]


async def _place_distinct(conn: Conn, requests: Sequence[PlacementRequest], attempt: int = 1) -> list[Result]:
    """Outcome of each request (distinct (account, request_id) pairs): an order id or the error to raise."""
    single = len(requests) == 1
    try:
        rows = await sql.place_batch(conn, [_new_order(r) for r in requests])
    except CONNECTION_ERRORS:
        raise
    except asyncpg.PostgresError as exc:
        if single:
            return [_single_failure(exc)]
        # One bad order must not fail the others: place them one by one.
        log.warning("placement_batch_failed", error=repr(exc), size=len(requests))
        return [(await _place_distinct(conn, [r]))[0] for r in requests]

    results: list[Result | None] = [None] * len(requests)
    refused: list[int] = []
    skipped: list[int] = []
    balance_left: dict[int, Decimal] = {}
    for i, (req, row) in enumerate(zip(requests, rows, strict=True)):
        match row.outcome:
            case sql.Outcome.PLACED:
                results[i] = row.order_id
            case sql.Outcome.EXISTING:
                results[i] = _original(row.order_id, row.params_hash, req.params_hash)
            case sql.Outcome.SUSPENDED:
                results[i] = AccountSuspended()
            case sql.Outcome.REFUSED:
                if single:
                    results[i] = InsufficientBalance()
                else:
                    refused.append(i)
                    if row.balance_left is not None:
                        balance_left[req.account_id] = row.balance_left
            case sql.Outcome.SKIPPED:
                skipped.append(i)

    rerun: list[int] = []
    if skipped:
        # Another batch committed these request_ids after our snapshot: its order is the original.
        found = await sql.find_orders(conn, [(requests[i].account_id, requests[i].request_id) for i in skipped])
        for i, winner in zip(skipped, found, strict=True):
            if winner is None:
                rerun.append(i)
            else:
                results[i] = _original(winner[0], winner[1], requests[i].params_hash)

    # The running sum is greedy (balance 10: 8 taken, then 5 and 1 both refused). Re-run alone, in batch
    # order, each refused order that still fits into what its account has left; the rest truly do not fit.
    for i in refused:
        req = requests[i]
        left = balance_left.get(req.account_id)
        if left is not None and req.draft.charge > left:
            results[i] = InsufficientBalance()
        else:
            rerun.append(i)
            if left is not None:
                balance_left[req.account_id] = left - req.draft.charge

    for i in sorted(rerun):
        if single and attempt >= _SINGLE_ATTEMPTS:
            results[i] = RuntimeError(f"placement did not settle after {attempt} attempts")
        else:
            results[i] = (await _place_distinct(conn, [requests[i]], attempt + 1 if single else 1))[0]
    return [r if r is not None else RuntimeError("placement left a request unsettled") for r in results]


def _original(order_id: int | None, placed_hash: bytes | None, params_hash: bytes) -> int | RequestIdConflict | None:
    """The answer to a request_id placed before: its order (an idempotent replay), or a 409 for other params."""
    if placed_hash != params_hash:
        return RequestIdConflict()
    metrics.API_IDEMPOTENT_REPLAYS.inc()
    return order_id


def _new_order(req: PlacementRequest) -> sql.NewOrder:
    d = req.draft
    return sql.NewOrder(
        account_id=req.account_id,
        request_id=req.request_id,
        params_hash=req.params_hash,
        service_id=d.service_id,
        type=d.type,
        link=d.link,
        quantity=d.quantity,
        params=d.params,
        rate=d.rate,
        charge=d.charge,
        currency=req.currency,
        correlation_id=req.correlation_id,
    )


def _single_failure(exc: asyncpg.PostgresError) -> BaseException:
    # The orders table's only foreign key the statement can break is the service: it was deleted meanwhile.
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return ServiceNotFound()
    log.error("placement_failed", error=repr(exc))
    return exc
