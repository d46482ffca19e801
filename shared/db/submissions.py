"""SQL of a submission attempt between its claim and its answer: the "about to send" mark, and what the sweeper
does with attempts whose worker never recorded an answer. Runs in autocommit (one statement each).

`orders.submit_unsent_attempt` holds the claimed attempt while its request has provably not started: the
claim sets it (`shared.db.lifecycle`), `mark_sending` clears it just before the request's first byte is
written. A stale 'submitting' row whose attempt is still there was never sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from shared.db.types import Conn


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
