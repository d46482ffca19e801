"""SQL reads of orders: what `status` answers (scoped to the caller's account, so an id of another account
reads exactly like a missing one), the admin CLI's listings, and the parked orders ('unknown': the upstream
may or may not have them) for the operator's commands. Plain reads, no locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from shared.db.types import Conn

# What `OrderStatus.answer_of` takes, in its order: status, charge - refunded as NUMERIC(20, 5) text ("1.50000"),
# quantity, start_count, remains, currency.
StatusColumns = tuple[str, str, int, int | None, int | None, str]


async def status_columns(conn: Conn, *, account_id: int, order_ids: Sequence[int]) -> dict[int, StatusColumns]:
    """What the api's `status` answers, per order id of the account: plain tuples, the charge after refunds as
    Postgres's text (no Decimal, no object per order)."""
    rows = await conn.fetch(
        "SELECT id, status, (charge - refunded)::text, quantity, start_count, remains, currency"
        " FROM orders WHERE account_id = $1 AND id = ANY($2::bigint[])",
        account_id,
        order_ids,
    )
    return {r[0]: r[1:] for r in rows}


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


# --- parked orders -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParkedOrder:
    id: int
    account_id: int
    service_id: int
    provider_id: int | None
    provider_service_id: str | None
    link: str | None
    quantity: int
    charge: Decimal
    currency: str
    submit_attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime


async def list_parked(conn: Conn, *, limit: int = 1000) -> list[ParkedOrder]:
    rows = await conn.fetch(
        """
        SELECT o.id, o.account_id, o.service_id, s.provider_id, s.provider_service_id, o.link, o.quantity, o.charge,
               o.currency, o.submit_attempts, o.last_error, o.created_at, o.updated_at
        FROM orders o JOIN services s ON s.id = o.service_id
        WHERE o.status = 'unknown'
        ORDER BY o.id LIMIT $1
        """,
        limit,
    )
    return [ParkedOrder(**dict(r.items())) for r in rows]


async def service_provider(conn: Conn, *, order_id: int) -> int | None:
    provider_id: int | None = await conn.fetchval(
        "SELECT s.provider_id FROM orders o JOIN services s ON s.id = o.service_id WHERE o.id = $1", order_id
    )
    return provider_id
