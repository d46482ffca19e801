"""SQL of cancels: an api request recorded on the order, its forwarding upstream by the worker, and the end of an
order canceled before it was bought (the api's cancel of a pending order, a refusal upstream, an operator's
refund of a parked order). Inside the caller's transaction with the order locked, unless it says otherwise;
the refund itself is paid with `shared.db.accounts.pay_refunds`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.db.types import Conn


async def finish_canceled(conn: Conn, *, order_id: int, error: str | None) -> None:
    """An order that was never bought ends 'canceled', nothing delivered; `error` says why (None keeps the last
    one). The refund is paid separately, with `shared.db.accounts.pay_refunds`."""
    await conn.execute(
        """
        UPDATE orders SET status = 'canceled', remains = quantity, next_attempt_at = NULL,
                          submit_started_at = NULL, last_error = coalesce($2, last_error), updated_at = now()
        WHERE id = $1
        """,
        order_id,
        error,
    )


@dataclass(frozen=True)
class CancelClaim:
    order_id: int
    provider_id: int
    provider_order_id: str
    allowed: bool


async def claim_cancels(conn: Conn, *, order_ids: Sequence[int] | None, limit: int) -> list[CancelClaim]:
    """In-flight orders with a cancel request not yet forwarded; marks them forwarded (commit before calling).

    `order_ids=None`: any such order (the sweeper); otherwise only those named by `cancel.requested`.
    """
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT o.id FROM orders o
            WHERE o.cancel_requested_at IS NOT NULL AND o.cancel_forwarded_at IS NULL
              AND o.status IN ('in_progress', 'processing')
              AND ($1::bigint[] IS NULL OR o.id = ANY($1::bigint[]))
            ORDER BY o.id LIMIT $2 FOR UPDATE SKIP LOCKED
        )
        UPDATE orders o SET cancel_forwarded_at = now(), next_attempt_at = now(), updated_at = now()
        FROM due, services s
        WHERE o.id = due.id AND s.id = o.service_id
        RETURNING o.id, o.provider_id, o.provider_order_id, s.cancel AS allowed
        """,
        None if order_ids is None else list(order_ids),
        limit,
    )
    return [CancelClaim(r["id"], r["provider_id"], r["provider_order_id"], r["allowed"]) for r in rows]


async def request_cancel(conn: Conn, *, order_id: int) -> None:
    """Record a cancel request (idempotent: the first request's time stays)."""
    await conn.execute(
        """
        UPDATE orders SET cancel_requested_at = coalesce(cancel_requested_at, now()), updated_at = now()
        WHERE id = $1
        """,
        order_id,
    )


async def note_error(conn: Conn, *, order_id: int, error: str) -> None:
    await conn.execute("UPDATE orders SET last_error = $2, updated_at = now() WHERE id = $1", order_id, error)
