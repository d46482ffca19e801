"""SQL the api runs on placed orders: status reads, refill requests and cancels.

Every query is scoped to the caller's account, so an id of another account reads exactly like a missing one.
Placement itself lives in `shared/db/placement.py`; the worker's lifecycle SQL in `shared/db/lifecycle.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from shared.db.types import Conn
from shared.domain.statuses import REFILL_OPEN


@dataclass(frozen=True)
class OrderStatusRow:
    id: int
    status: str
    charge: Decimal
    refunded: Decimal
    quantity: int
    start_count: int | None
    remains: int | None
    currency: str


@dataclass(frozen=True)
class LockedOrder:
    """An order row locked `FOR UPDATE` with what refill and cancel decide on."""

    id: int
    account_id: int
    status: str
    charge: Decimal
    refunded: Decimal
    quantity: int
    start_count: int | None
    remains: int | None
    currency: str
    cancel_requested_at: datetime | None
    service_refill: bool
    service_cancel: bool
    never_sent: bool  # provably never reached an upstream (see `lock_order`)


_STATUS_COLUMNS = "id, status, charge, refunded, quantity, start_count, remains, currency"


def _status_row(row: asyncpg.Record) -> OrderStatusRow:
    return OrderStatusRow(**dict(row.items()))


async def order_statuses(conn: Conn, *, account_id: int, order_ids: Sequence[int]) -> dict[int, OrderStatusRow]:
    rows = await conn.fetch(
        f"SELECT {_STATUS_COLUMNS} FROM orders WHERE account_id = $1 AND id = ANY($2::bigint[])",
        account_id,
        list(order_ids),
    )
    return {r["id"]: _status_row(r) for r in rows}


async def lock_order(conn: Conn, *, account_id: int, order_id: int) -> LockedOrder | None:
    """Lock the order row (inside the caller's transaction) with its service's refill/cancel flags.

    `never_sent`: no attempt's send mark was ever cleared (`submit_maybe_sent`, kept by a trigger) and the
    latest attempt's mark is in place (a claim without a mark counts as maybe sent): no request ever started.
    """
    row = await conn.fetchrow(
        """
        SELECT o.id, o.account_id, o.status, o.charge, o.refunded, o.quantity, o.start_count, o.remains,
               o.currency, o.cancel_requested_at, s.refill AS service_refill, s.cancel AS service_cancel,
               (NOT o.submit_maybe_sent AND (o.submit_attempts = 0 OR o.submit_unsent_attempt = o.submit_attempts))
                   AS never_sent
        FROM orders o JOIN services s ON s.id = o.service_id
        WHERE o.id = $1 AND o.account_id = $2
        FOR UPDATE OF o
        """,
        order_id,
        account_id,
    )
    return None if row is None else LockedOrder(**dict(row.items()))


# --- refills ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefillCounts:
    total: int
    open: int


async def refill_counts(conn: Conn, *, order_id: int) -> RefillCounts:
    row = await conn.fetchrow(
        """
        SELECT count(*) AS total, count(*) FILTER (WHERE status = ANY($2::text[])) AS open
        FROM refills WHERE order_id = $1
        """,
        order_id,
        [str(s) for s in REFILL_OPEN],
    )
    assert row is not None
    return RefillCounts(total=row["total"], open=row["open"])


async def insert_refill(conn: Conn, *, order_id: int, account_id: int) -> int:
    refill_id: int = await conn.fetchval(
        "INSERT INTO refills (order_id, account_id, status) VALUES ($1, $2, 'pending') RETURNING id",
        order_id,
        account_id,
    )
    return refill_id


async def refill_statuses(conn: Conn, *, account_id: int, refill_ids: Sequence[int]) -> dict[int, str]:
    rows = await conn.fetch(
        "SELECT id, status FROM refills WHERE account_id = $1 AND id = ANY($2::bigint[])",
        account_id,
        list(refill_ids),
    )
    return {r["id"]: r["status"] for r in rows}


# --- cancel ----------------------------------------------------------------------------------------------


async def cancel_pending_with_refund(conn: Conn, order: LockedOrder) -> Decimal:
    """Cancel a locked 'pending' order and give back what is left of its charge; returns the amount refunded.

    Runs inside the caller's transaction: the order, the ledger row and the balance move together or not at all.
    The ledger's unique (order_id, 'refund') index makes a second refund impossible even if a caller erred.
    """
    amount = order.charge - order.refunded
    await conn.execute(
        """
        UPDATE orders SET status = 'canceled', refunded = charge, remains = quantity, next_attempt_at = NULL,
                          updated_at = now()
        WHERE id = $1 AND status = 'pending'
        """,
        order.id,
    )
    await conn.execute(
        "INSERT INTO ledger (account_id, kind, amount, order_id, memo) VALUES ($1, 'refund', $2, $3, $4)",
        order.account_id,
        amount,
        order.id,
        "canceled before submission",
    )
    await conn.execute("UPDATE accounts SET balance = balance + $2 WHERE id = $1", order.account_id, amount)
    return amount


async def mark_cancel_requested(conn: Conn, *, order_id: int) -> None:
    await conn.execute(
        "UPDATE orders SET cancel_requested_at = now(), updated_at = now() WHERE id = $1",
        order_id,
    )


# --- admin reads (CLI) ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderListing:
    id: int
    account_id: int
    service_id: int
    type: str
    status: str
    quantity: int
    charge: Decimal
    refunded: Decimal
    currency: str
    start_count: int | None
    remains: int | None
    provider_id: int | None
    provider_order_id: str | None
    submit_attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    correlation_id: str | None
    created_at: datetime
    updated_at: datetime


_LISTING_COLUMNS = ", ".join(OrderListing.__dataclass_fields__)


async def list_orders(
    conn: Conn, *, account_id: int | None = None, status: str | None = None, limit: int = 100
) -> list[OrderListing]:
    """The newest orders first, by account and/or stored status (`unknown` is what the worker parked)."""
    rows = await conn.fetch(
        f"SELECT {_LISTING_COLUMNS} FROM orders"
        " WHERE ($1::bigint IS NULL OR account_id = $1) AND ($2::text IS NULL OR status = $2)"
        " ORDER BY id DESC LIMIT $3",
        account_id,
        status,
        limit,
    )
    return [OrderListing(**dict(row.items())) for row in rows]


async def get_order(conn: Conn, order_id: int) -> OrderListing | None:
    row = await conn.fetchrow(f"SELECT {_LISTING_COLUMNS} FROM orders WHERE id = $1", order_id)
    return None if row is None else OrderListing(**dict(row.items()))
