"""SQL of status polling: bought orders due for a check are claimed with a lease (several workers share them),
and what the upstream answered is written back in one statement per batch (inside the caller's transaction,
the orders locked first; the refunds a change owes are paid with `shared.db.accounts.pay_refunds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.db.types import Conn
from shared.domain.statuses import OrderState


@dataclass(frozen=True)
class PollClaim:
    id: int
    provider_id: int
    provider_order_id: str


async def claim_due_polls(conn: Conn, *, limit: int, lease_s: float) -> list[PollClaim]:
    """Claim in-flight orders due for a status check (autocommit is fine: one statement).

    The claim pushes `next_attempt_at` a lease ahead, so the rows are free again for other workers at once and
    come back by themselves if this worker dies before it records the answer.
    """
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT id FROM orders
            WHERE status IN ('in_progress', 'processing') AND next_attempt_at <= now()
            ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
        )
        UPDATE orders o SET next_attempt_at = now() + make_interval(secs => $2), polls = o.polls + 1
        FROM due WHERE o.id = due.id AND o.provider_id IS NOT NULL AND o.provider_order_id IS NOT NULL
        RETURNING o.id, o.provider_id, o.provider_order_id
        """,
        limit,
        lease_s,
    )
    return [PollClaim(r["id"], r["provider_id"], r["provider_order_id"]) for r in rows]


@dataclass(frozen=True)
class Progress:
    order_id: int
    state: OrderState
    start_count: int | None
    remains: int | None
    next_poll_s: float | None  # None: terminal, never polled again
    error: str | None = None


async def record_progress(conn: Conn, progress: Sequence[Progress]) -> None:
    """Status, counters and the next check of polled orders, in one statement. Only in-flight rows move."""
    if not progress:
        return
    await conn.execute(
        """
        UPDATE orders o
        SET status = p.state, start_count = p.start_count, remains = p.remains,
            next_attempt_at = CASE WHEN p.next_s IS NULL THEN NULL
                                   ELSE now() + make_interval(secs => p.next_s) END,
            last_error = p.error, updated_at = now()
        FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::float8[], $6::text[])
             AS p(id, state, start_count, remains, next_s, error)
        WHERE o.id = p.id AND o.status IN ('in_progress', 'processing')
        """,
        [p.order_id for p in progress],
        [str(p.state) for p in progress],
        [p.start_count for p in progress],
        [p.remains for p in progress],
        [p.next_poll_s for p in progress],
        [p.error for p in progress],
    )
