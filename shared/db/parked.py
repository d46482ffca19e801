"""SQL of parked orders ('unknown': the upstream may or may not have them) for the operator's commands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from shared.db.types import Conn


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


async def mark_resubmit(conn: Conn, *, order_id: int, note: str) -> None:
    """Back to 'pending', due now: the worker's sweeper submits it again (on the operator's word only)."""
    await conn.execute(
        """
        UPDATE orders SET status = 'pending', next_attempt_at = now(), submit_started_at = NULL, last_error = $2,
                          updated_at = now()
        WHERE id = $1 AND status = 'unknown'
        """,
        order_id,
        note,
    )
