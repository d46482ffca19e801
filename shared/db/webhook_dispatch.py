"""SQL of the dispatcher's hot path, set-based: a batch of events fanned out into deliveries in one statement,
a claim in one call (`webhook_claim`, migration 005), and a round of attempt results recorded in one statement
(plus one for the endpoints' failure streaks when something failed).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.db.types import Conn


@dataclass(frozen=True)
class IncomingEvent:
    """A subscriber event to store; `endpoint_id` only for `webhook.test` (that endpoint alone receives it)."""

    id: uuid.UUID
    account_id: int
    type: str
    data: str  # JSON text
    endpoint_id: int | None = None
    correlation_id: str | None = None  # of the api request the event stems from, for the log lines


@dataclass(frozen=True)
class Lease:
    """A delivery claimed for one attempt, with what is needed to send it."""

    delivery_id: int
    endpoint_id: int
    event_id: uuid.UUID
    event_type: str
    data: dict[str, Any]
    event_time: datetime
    attempt: int
    step: int
    url: str
    secret_enc: str
    old_secret_enc: str | None
    token: uuid.UUID
    # The correlation id of the api request the event stems from (kept with the event), for the log lines.
    correlation_id: str | None = None
    # Attempts of this run (since the delivery was queued or replayed), this one included (migration 013).
    run_attempt: int = 1


@dataclass(frozen=True)
class Finish:
    """The outcome of one attempt of a leased delivery, as written back."""

    lease: Lease
    status: str  # pending (a retry is scheduled), succeeded, failed, skipped
    step: int
    delay_s: float | None  # until the retry, for `pending`
    status_code: int | None
    latency_ms: int
    error: str | None
    response_body: str | None


# Events (sorted by id, so concurrent batches sharing an event take their locks in the same order) and one
# delivery per subscribed endpoint and event. A redelivered event creates nothing new (both inserts are
# idempotent); a disabled endpoint's delivery is stored as skipped, to be replayed later. FOR KEY SHARE: an
# endpoint being disabled (or enabled) right now is waited for — those lock it FOR UPDATE — so a delivery cannot
# be written as pending after the disabling transaction turned the pending ones into skipped; the claims'
# FOR NO KEY UPDATE does not conflict with it, so fan-out and sending do not wait for each other.
INGEST_EVENTS = """
WITH incoming AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[])
        AS i (id, account_id, type, data, endpoint_id, correlation_id)
), stored AS (
    INSERT INTO webhook_events (id, account_id, type, data, endpoint_id, correlation_id)
    SELECT id, account_id, type, data::jsonb, endpoint_id, correlation_id FROM incoming ORDER BY id
    ON CONFLICT (id) DO NOTHING
), targets AS MATERIALIZED (
    SELECT e.id, e.account_id, e.events, e.enabled FROM webhook_endpoints e
    WHERE e.account_id = ANY ($2::bigint[])
      AND EXISTS (
          SELECT 1 FROM incoming i
          WHERE i.account_id = e.account_id
            AND (CASE WHEN i.endpoint_id IS NULL THEN i.type = ANY (e.events) ELSE e.id = i.endpoint_id END)
      )
    ORDER BY e.id
    FOR KEY SHARE
)
INSERT INTO webhook_deliveries (endpoint_id, event_id, status, next_attempt_at)
SELECT t.id, i.id, CASE WHEN t.enabled THEN 'pending' ELSE 'skipped' END, CASE WHEN t.enabled THEN now() END
FROM incoming i
JOIN targets t ON t.account_id = i.account_id
  AND (CASE WHEN i.endpoint_id IS NULL THEN i.type = ANY (t.events) ELSE t.id = i.endpoint_id END)
ORDER BY i.id, t.id
ON CONFLICT (endpoint_id, event_id) DO NOTHING
"""


async def ingest_events(conn: Conn, events: Sequence[IncomingEvent]) -> int:
    """Store the events and their deliveries in one statement; returns the deliveries created now."""
    if not events:
        return 0
    ordered = sorted(events, key=lambda e: e.id)
    status = await conn.execute(
        INGEST_EVENTS,
        [e.id for e in ordered],
        [e.account_id for e in ordered],
        [e.type for e in ordered],
        [e.data for e in ordered],
        [e.endpoint_id for e in ordered],
        [e.correlation_id for e in ordered],
    )
    return int(status.split()[-1])


async def claim(
    conn: Conn, *, limit: int, concurrency: int, rate_per_s: float, burst: int, lease_s: float
) -> list[Lease]:
    """Lease up to `limit` due deliveries within every endpoint's concurrency and rate limits (one call)."""
    token = uuid.uuid4()
    rows = await conn.fetch(
        "SELECT * FROM webhook_claim($1, $2, $3, $4, $5, $6)", limit, concurrency, rate_per_s, burst, lease_s, token
    )
    return [Lease(**{**dict(r), "token": token}) for r in rows]


# Start or continue the failure streak of each endpoint that failed in a round; within the round, a failure after
# one of its successes starts a new streak now, and a success after its last failure ends the streak.
NOTE_STREAKS = """
UPDATE webhook_endpoints e
SET failing_since = CASE WHEN u.last_ok THEN NULL WHEN u.any_ok THEN now() ELSE coalesce(e.failing_since, now()) END
FROM unnest($1::bigint[], $2::bool[], $3::bool[]) AS u (id, last_ok, any_ok)
WHERE e.id = u.id
RETURNING e.id, e.failing_since, now() AS now, e.enabled
"""


@dataclass(frozen=True)
class EndpointRound:
    """The results of a round for an endpoint that failed in it, in the order its attempts ended."""

    last_ok: bool  # its last result was a success
    any_ok: bool


@dataclass(frozen=True)
class Streak:
    failing_since: datetime | None  # None: its last result in the round was a success
    now: datetime
    enabled: bool


async def note_streaks(conn: Conn, rounds: dict[int, EndpointRound]) -> dict[int, Streak]:
    """Note the failures of a round (endpoint id → what it did in the round); their streaks now, a deleted
    endpoint missing."""
    if not rounds:
        return {}
    ids = sorted(rounds)  # the same lock order in every dispatcher
    rows = await conn.fetch(
        NOTE_STREAKS,
        ids,
        [rounds[i].last_ok for i in ids],
        [rounds[i].any_ok for i in ids],
    )
    return {r["id"]: Streak(r["failing_since"], r["now"], r["enabled"]) for r in rows}


# Finish the leased deliveries (a lost lease — expired and taken by another dispatcher, or turned skipped by a
# disabling — finishes nothing), log every attempt whose delivery still exists, and end the failure streak of
# the endpoints that only succeeded (written only when one was running).
FINISH_ROUND = """
WITH u AS (
    SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[], $5::float8[], $6::int[], $7::text[],
                         $8::bigint[], $9::int[], $10::int[], $11::text[])
        WITH ORDINALITY AS u (delivery_id, token, status, step, delay_s, status_code, error, endpoint_id, attempt,
                              latency_ms, response_body, ord)
), finished AS (
    UPDATE webhook_deliveries d
    SET status = u.status, step = u.step, lease_token = NULL, last_status = u.status_code, last_error = u.error,
        updated_at = now(),
        next_attempt_at = CASE WHEN u.delay_s IS NULL THEN NULL ELSE now() + make_interval(secs => u.delay_s) END
    FROM u
    WHERE d.id = ANY ($1::bigint[]) AND d.id = u.delivery_id AND d.lease_token = u.token AND d.status = 'pending'
    RETURNING d.id
), logged AS (
    INSERT INTO webhook_attempts (delivery_id, endpoint_id, attempt, status_code, latency_ms, error, response_body)
    SELECT u.delivery_id, u.endpoint_id, u.attempt, u.status_code, u.latency_ms, u.error, u.response_body
    FROM u
    WHERE u.delivery_id IN (SELECT d.id FROM webhook_deliveries d WHERE d.id = ANY ($1::bigint[]))
    ORDER BY u.ord
), recovered AS (
    UPDATE webhook_endpoints e SET failing_since = NULL
    WHERE e.id = ANY ($12::bigint[]) AND e.failing_since IS NOT NULL
)
SELECT id FROM finished
"""


async def finish_round(conn: Conn, finishes: Sequence[Finish], recovered: Sequence[int]) -> set[int]:
    """Write the outcomes (in the order the attempts ended) and end the streaks of the `recovered` endpoints;
    returns the delivery ids whose lease still held."""
    rows = await conn.fetch(
        FINISH_ROUND,
        [f.lease.delivery_id for f in finishes],
        [f.lease.token for f in finishes],
        [f.status for f in finishes],
        [f.step for f in finishes],
        [f.delay_s for f in finishes],
        [f.status_code for f in finishes],
        [f.error for f in finishes],
        [f.lease.endpoint_id for f in finishes],
        [f.lease.attempt for f in finishes],
        [f.latency_ms for f in finishes],
        [f.response_body for f in finishes],
        sorted(recovered),
    )
    return {r["id"] for r in rows}
