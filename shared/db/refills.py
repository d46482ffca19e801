"""SQL of refills: the api's requests (under the lock of their order, `shared.db.orders.locks`) and status
reads, and the worker's forwarding upstream and following of their status.

A refill costs nothing, so unlike an order an uncertain forward is simply retried: the upstream answers a
second request for the same order with an error ("refill already pending"), never with a second charge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.db.types import Conn
from shared.domain.statuses import REFILL_OPEN

# --- the api -------------------------------------------------------------------------------------------


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


# --- the worker ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefillClaim:
    id: int
    order_id: int
    account_id: int
    provider_id: int | None
    provider_order_id: str | None
    allowed: bool
    attempt: int
    correlation_id: str | None


_CLAIM = """
WITH picked AS ({picked}),
claimed AS (
    UPDATE refills r SET status = 'submitting', attempts = r.attempts + 1, submit_started_at = now(),
                         updated_at = now()
    FROM picked WHERE r.id = picked.id
    RETURNING r.id, r.order_id, r.account_id, r.attempts
)
SELECT c.id, c.order_id, c.account_id, o.provider_id, o.provider_order_id, s.refill AS allowed,
       c.attempts AS attempt, o.correlation_id
FROM claimed c JOIN orders o ON o.id = c.order_id JOIN services s ON s.id = o.service_id
ORDER BY c.id
"""
_PICK_NAMED = "SELECT id FROM refills WHERE id = ANY($1::bigint[]) AND status = 'pending' ORDER BY id FOR UPDATE"
_PICK_DUE = """
SELECT id FROM refills
WHERE status = 'pending'
  AND (next_attempt_at <= now() OR (next_attempt_at IS NULL AND created_at < now() - make_interval(secs => $1)))
ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
"""


async def claim_named(conn: Conn, refill_ids: Sequence[int]) -> list[RefillClaim]:
    rows = await conn.fetch(_CLAIM.format(picked=_PICK_NAMED), sorted(set(refill_ids)))
    return [RefillClaim(**dict(r.items())) for r in rows]


async def claim_due(conn: Conn, *, grace_s: float, limit: int) -> list[RefillClaim]:
    rows = await conn.fetch(_CLAIM.format(picked=_PICK_DUE), grace_s, limit)
    return [RefillClaim(**dict(r.items())) for r in rows]


async def mark_forwarded(
    conn: Conn, *, refill_id: int, attempt: int, provider_refill_id: str, first_poll_s: float
) -> bool:
    found = await conn.fetchval(
        """
        UPDATE refills SET status = 'in_progress', provider_refill_id = $3, submit_started_at = NULL,
                           next_attempt_at = now() + make_interval(secs => $4), last_error = NULL, updated_at = now()
        WHERE id = $1 AND status = 'submitting' AND attempts = $2
        RETURNING id
        """,
        refill_id,
        attempt,
        provider_refill_id,
        first_poll_s,
    )
    return found is not None


async def mark_rejected(conn: Conn, *, refill_id: int, attempt: int | None, error: str) -> bool:
    found = await conn.fetchval(
        """
        UPDATE refills SET status = 'rejected', submit_started_at = NULL, next_attempt_at = NULL, last_error = $3,
                           updated_at = now()
        WHERE id = $1 AND ($2::int IS NULL OR (status = 'submitting' AND attempts = $2))
        RETURNING id
        """,
        refill_id,
        attempt,
        error,
    )
    return found is not None


async def mark_retry(conn: Conn, *, refill_id: int, attempt: int, delay_s: float, error: str) -> None:
    await conn.execute(
        """
        UPDATE refills SET status = 'pending', submit_started_at = NULL,
                           next_attempt_at = now() + make_interval(secs => $3), last_error = $4, updated_at = now()
        WHERE id = $1 AND status = 'submitting' AND attempts = $2
        """,
        refill_id,
        attempt,
        delay_s,
        error,
    )


async def release_stale(conn: Conn, *, older_than_s: float) -> list[int]:
    """'submitting' refills of a dead worker go back to 'pending' (forwarding a refill twice is harmless)."""
    rows = await conn.fetch(
        """
        UPDATE refills SET status = 'pending', submit_started_at = NULL, next_attempt_at = now(), updated_at = now(),
                           last_error = 'worker stopped during the upstream call'
        WHERE status = 'submitting' AND submit_started_at < now() - make_interval(secs => $1)
        RETURNING id
        """,
        older_than_s,
    )
    return [r["id"] for r in rows]


@dataclass(frozen=True)
class RefillPoll:
    id: int
    order_id: int
    account_id: int
    status: str
    provider_id: int
    provider_refill_id: str
    correlation_id: str | None
    age_s: float


async def claim_due_polls(conn: Conn, *, limit: int, lease_s: float) -> list[RefillPoll]:
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT id FROM refills
            WHERE status = 'in_progress' AND next_attempt_at <= now()
            ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
        ),
        claimed AS (
            UPDATE refills r SET next_attempt_at = now() + make_interval(secs => $2)
            FROM due WHERE r.id = due.id
            RETURNING r.id, r.order_id, r.account_id, r.status, r.provider_refill_id, r.created_at
        )
        SELECT c.id, c.order_id, c.account_id, c.status, o.provider_id, c.provider_refill_id, o.correlation_id,
               extract(epoch FROM now() - c.created_at)::float8 AS age_s
        FROM claimed c JOIN orders o ON o.id = c.order_id
        WHERE o.provider_id IS NOT NULL AND c.provider_refill_id IS NOT NULL
        """,
        limit,
        lease_s,
    )
    return [RefillPoll(**dict(r.items())) for r in rows]


async def record_status(
    conn: Conn, *, refill_id: int, status: str, next_poll_s: float | None, error: str | None = None
) -> bool:
    """Move an in-progress refill; returns whether its status changed (only 'in_progress' rows move)."""
    previous = await conn.fetchval(
        """
        WITH old AS (SELECT id, status FROM refills WHERE id = $1 AND status = 'in_progress' FOR UPDATE)
        UPDATE refills r SET status = $2,
                             next_attempt_at = CASE WHEN $3::float8 IS NULL THEN NULL
                                                    ELSE now() + make_interval(secs => $3) END,
                             last_error = $4, updated_at = now()
        FROM old WHERE r.id = old.id
        RETURNING old.status
        """,
        refill_id,
        status,
        next_poll_s,
        error,
    )
    return previous is not None and previous != status
