"""SQL of a placed order's way upstream: the claim (committed before any upstream call), the "about to send"
mark, the recorded answer, what the sweeper does with attempts whose worker never recorded one, and parking.

`orders.submit_unsent_attempt` holds the claimed attempt while its request has provably not started: the
claim sets it, `mark_sending` clears it just before the request's first byte is written. A stale 'submitting'
row whose attempt is still there was never sent. Claims, `mark_sending` and `settle_stale_submissions` are
committed on their own (autocommit or a short transaction of their own); the rest runs inside the caller's
transaction, with the orders locked (`shared.db.orders.locks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg

from shared.db.accounts import Capture
from shared.db.types import Conn

# --- claims -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """A claimed order ('submitting' is committed) with everything the upstream `add` needs."""

    id: int
    account_id: int
    type: str
    link: str | None
    quantity: int
    params: dict[str, Any]
    attempt: int
    correlation_id: str | None
    provider_id: int | None
    provider_service_id: str | None
    created_us: int
    idempotent: bool  # the provider honours request_id: an unknown outcome is resolved by sending it again


_CLAIM_SUBMISSION = """
WITH picked AS ({picked}),
claimed AS (
    UPDATE orders o
    SET status = 'submitting', submit_attempts = o.submit_attempts + 1, submit_started_at = now(),
        submit_unsent_attempt = o.submit_attempts + 1, updated_at = now()
    FROM picked WHERE o.id = picked.id
    RETURNING o.id, o.account_id, o.type, o.link, o.quantity, o.params, o.submit_attempts, o.correlation_id,
              o.service_id, o.created_at
)
SELECT c.id, c.account_id, c.type, c.link, c.quantity, c.params, c.submit_attempts AS attempt, c.correlation_id,
       s.provider_id, s.provider_service_id, (extract(epoch FROM c.created_at) * 1000000)::bigint AS created_us,
       coalesce(p.idempotent, false) AS idempotent
FROM claimed c JOIN services s ON s.id = c.service_id LEFT JOIN providers p ON p.id = s.provider_id
ORDER BY c.id
"""

# Orders named by `order.placed` messages: wait for a lock held by someone else (the api cancelling it,
# another worker claiming it), then see whether it is still pending.
_PICK_NAMED = "SELECT id FROM orders WHERE id = ANY($1::bigint[]) AND status = 'pending' ORDER BY id FOR UPDATE"
# Pending orders due for a retry, and orders whose message never came (older than the grace period).
_PICK_DUE = """
SELECT id FROM orders
WHERE status = 'pending'
  AND (next_attempt_at <= now() OR (next_attempt_at IS NULL AND created_at < now() - make_interval(secs => $1)))
ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
"""


def _submission(row: asyncpg.Record) -> Submission:
    return Submission(**dict(row.items()))


async def claim_named(conn: Conn, order_ids: Sequence[int]) -> list[Submission]:
    """Mark the still-pending orders among `order_ids` 'submitting'; the caller commits before calling out."""
    rows = await conn.fetch(_CLAIM_SUBMISSION.format(picked=_PICK_NAMED), sorted(set(order_ids)))
    return [_submission(r) for r in rows]


async def claim_due(conn: Conn, *, grace_s: float, limit: int) -> list[Submission]:
    rows = await conn.fetch(_CLAIM_SUBMISSION.format(picked=_PICK_DUE), grace_s, limit)
    return [_submission(r) for r in rows]


# --- answers ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Purchase:
    order_id: int
    provider_id: int
    provider_order_id: str
    first_poll_s: float


async def mark_accepted(conn: Conn, purchases: Sequence[Purchase]) -> list[Capture]:
    """Orders the upstream took: their ids there, the first status checks scheduled. Set-based: one statement
    per batch. Returns the reservations now spent upstream, for `shared.db.accounts.record_captures`."""
    if not purchases:
        return []
    rows = await conn.fetch(
        """
        UPDATE orders o
        SET status = 'in_progress', provider_id = p.provider_id, provider_order_id = p.provider_order_id,
            submitted_at = now(), next_attempt_at = now() + make_interval(secs => p.first_s),
            submit_started_at = NULL, last_error = NULL, updated_at = now()
        FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::float8[])
             AS p(id, provider_id, provider_order_id, first_s)
        WHERE o.id = p.id
        RETURNING o.id, o.account_id
        """,
        [p.order_id for p in purchases],
        [p.provider_id for p in purchases],
        [p.provider_order_id for p in purchases],
        [p.first_poll_s for p in purchases],
    )
    return [Capture(r["id"], r["account_id"]) for r in rows]


async def mark_retry(conn: Conn, *, order_id: int, delay_s: float, error: str) -> None:
    await conn.execute(
        """
        UPDATE orders SET status = 'pending', next_attempt_at = now() + make_interval(secs => $2),
                          submit_started_at = NULL, last_error = $3, updated_at = now()
        WHERE id = $1
        """,
        order_id,
        delay_s,
        error,
    )


async def mark_parked(conn: Conn, *, order_id: int, error: str) -> None:
    await conn.execute(
        """
        UPDATE orders SET status = 'unknown', next_attempt_at = NULL, last_error = $2, updated_at = now()
        WHERE id = $1
        """,
        order_id,
        error,
    )


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


# --- the request itself, and attempts left without an answer -------------------------------------------


async def mark_sending(conn: Conn, attempts: Sequence[tuple[int, int]]) -> set[int]:
    """Record that these (order id, attempt) requests are about to be written; the ids still ours to send.

    An order missing from the answer is no longer this attempt's ('submitting' with that attempt number): the
    sweeper gave it back to pending, or another worker claimed it since. Its request must not be sent.
    """
    if not attempts:
        return set()
    rows = await conn.fetch(
        """
        WITH m AS (SELECT * FROM unnest($1::bigint[], $2::int[]) AS m(id, attempt)),
        mine AS (
            SELECT o.id FROM orders o JOIN m ON m.id = o.id
            WHERE o.status = 'submitting' AND o.submit_attempts = m.attempt AND o.submit_unsent_attempt = m.attempt
            ORDER BY o.id FOR UPDATE OF o
        )
        UPDATE orders o SET submit_unsent_attempt = NULL FROM mine WHERE o.id = mine.id
        RETURNING o.id
        """,
        [order_id for order_id, _ in attempts],
        [attempt for _, attempt in attempts],
    )
    return {r["id"] for r in rows}


class StaleOutcome(StrEnum):
    NEVER_SENT = "never_sent"  # the request never started: back to pending, sent now
    RESEND = "resend"  # it may have been sent, to a provider honouring request_id: sent again, same id
    PARKED = "parked"  # it may have been sent, to a provider that may buy it twice: parked ('unknown')


STALE_REASONS = {
    StaleOutcome.NEVER_SENT: "worker stopped after claiming the order, before its request started: back to pending",
    StaleOutcome.RESEND: (
        "worker stopped during the upstream call: the same request_id is sent again (the provider honours it)"
    ),
    StaleOutcome.PARKED: "worker stopped during the upstream call: outcome unknown",
}


@dataclass(frozen=True)
class StaleSubmission:
    id: int
    attempt: int
    outcome: StaleOutcome


async def settle_stale_submissions(conn: Conn, *, older_than_s: float, limit: int) -> list[StaleSubmission]:
    """'submitting' rows older than `older_than_s` (no answer was recorded: their worker stopped mid-call).

    Never sent → 'pending', due now; maybe sent to an idempotent provider → 'pending', due now (the retry sends
    the same request_id, so the provider answers the order it may already have); otherwise → 'unknown'.
    """
    rows = await conn.fetch(
        """
        WITH stale AS (
            SELECT o.id, o.submit_attempts AS attempt,
                   CASE WHEN o.submit_unsent_attempt = o.submit_attempts THEN 'never_sent'
                        WHEN coalesce(p.idempotent, false) THEN 'resend'
                        ELSE 'parked' END AS outcome
            FROM orders o JOIN services s ON s.id = o.service_id LEFT JOIN providers p ON p.id = s.provider_id
            WHERE o.status = 'submitting' AND o.submit_started_at < now() - make_interval(secs => $1)
            ORDER BY o.id LIMIT $2 FOR UPDATE OF o SKIP LOCKED
        )
        UPDATE orders o
        SET status = CASE stale.outcome WHEN 'parked' THEN 'unknown' ELSE 'pending' END,
            next_attempt_at = CASE stale.outcome WHEN 'parked' THEN NULL ELSE now() END,
            submit_started_at = NULL, updated_at = now(),
            last_error = CASE stale.outcome WHEN 'never_sent' THEN $3 WHEN 'resend' THEN $4 ELSE $5 END
        FROM stale WHERE o.id = stale.id
        RETURNING o.id, stale.attempt, stale.outcome
        """,
        older_than_s,
        limit,
        STALE_REASONS[StaleOutcome.NEVER_SENT],
        STALE_REASONS[StaleOutcome.RESEND],
        STALE_REASONS[StaleOutcome.PARKED],
    )
    return [StaleSubmission(r["id"], r["attempt"], StaleOutcome(r["outcome"])) for r in rows]
