"""SQL of webhooks: endpoints, received events, deliveries (the retry queue) and the attempt log.

Callers own the transaction; functions that need several statements to be atomic open a nested one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared.db.types import Conn

ENDPOINT_COLUMNS = """
    id, account_id, url, events, secret_enc, old_secret_enc, old_secret_expires_at, enabled,
    disabled_reason, disabled_at, failing_since, created_at
"""


@dataclass(frozen=True)
class Endpoint:
    id: int
    account_id: int
    url: str
    events: list[str]
    secret_enc: str
    old_secret_enc: str | None
    old_secret_expires_at: datetime | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Endpoint:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


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
    # The correlation id of the api request the event stems from (its outbox row's), for the log lines.
    correlation_id: str | None = None


# --- endpoints -----------------------------------------------------------------------------------------------


async def insert_endpoint(
    conn: Conn, *, account_id: int, url: str, events: list[str], secret_enc: str, max_endpoints: int
) -> int | None:
    """Insert an endpoint unless the account has `max_endpoints` already (then None)."""
    async with conn.transaction():
        # The account row lock serialises concurrent additions, so the limit cannot be raced past.
        await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id)
        count = await conn.fetchval("SELECT count(*) FROM webhook_endpoints WHERE account_id = $1", account_id)
        if count >= max_endpoints:
            return None
        endpoint_id: int = await conn.fetchval(
            "INSERT INTO webhook_endpoints (account_id, url, events, secret_enc) VALUES ($1, $2, $3, $4) RETURNING id",
            account_id,
            url,
            events,
            secret_enc,
        )
        return endpoint_id


async def get_endpoint(conn: Conn, endpoint_id: int, account_id: int | None = None) -> Endpoint | None:
    row = await conn.fetchrow(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND ($2::bigint IS NULL OR account_id = $2)",
        endpoint_id,
        account_id,
    )
    return None if row is None else Endpoint.from_row(row)


async def list_endpoints(conn: Conn, account_id: int | None = None) -> list[Endpoint]:
    rows = await conn.fetch(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE ($1::bigint IS NULL OR account_id = $1) ORDER BY id",
        account_id,
    )
    return [Endpoint.from_row(r) for r in rows]


async def delete_endpoint(conn: Conn, endpoint_id: int, account_id: int) -> bool:
    deleted = await conn.fetchval(
        "DELETE FROM webhook_endpoints WHERE id = $1 AND account_id = $2 RETURNING id", endpoint_id, account_id
    )
    return deleted is not None


async def rotate_secret(conn: Conn, endpoint_id: int, account_id: int, secret_enc: str, overlap_s: float) -> bool:
    found = await conn.fetchval(
        """
        UPDATE webhook_endpoints
        SET old_secret_enc = secret_enc, old_secret_expires_at = now() + make_interval(secs => $4),
            secret_enc = $3, updated_at = now()
        WHERE id = $1 AND account_id = $2
        RETURNING id
        """,
        endpoint_id,
        account_id,
        secret_enc,
        overlap_s,
    )
    return found is not None


async def disable_endpoint(conn: Conn, endpoint_id: int, reason: str) -> bool:
    """Disable an endpoint; its queued deliveries (not those being sent right now) become skipped."""
    async with conn.transaction():
        found = await conn.fetchval(
            """
            UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = $2, disabled_at = now(), updated_at = now()
            WHERE id = $1 RETURNING id
            """,
            endpoint_id,
            reason,
        )
        if found is None:
            return False
        await conn.execute(
            """
            UPDATE webhook_deliveries SET status = 'skipped', next_attempt_at = NULL, lease_token = NULL,
                   updated_at = now()
            WHERE endpoint_id = $1 AND status = 'pending' AND (lease_token IS NULL OR next_attempt_at <= now())
            """,
            endpoint_id,
        )
        return True


async def enable_endpoint(conn: Conn, endpoint_id: int) -> bool:
    found = await conn.fetchval(
        """
        UPDATE webhook_endpoints
        SET enabled = TRUE, disabled_reason = NULL, disabled_at = NULL, failing_since = NULL, updated_at = now()
        WHERE id = $1 RETURNING id
        """,
        endpoint_id,
    )
    return found is not None


async def note_success(conn: Conn, endpoint_id: int) -> None:
    # Written only when a failure streak ends: the common success path does not touch the row.
    await conn.execute(
        "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL", endpoint_id
    )


async def note_failure(conn: Conn, endpoint_id: int) -> tuple[datetime, datetime, bool] | None:
    """Start or continue the failure streak: (failing since, now, enabled), None for a deleted endpoint."""
    row = await conn.fetchrow(
        """
        UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, now())
        WHERE id = $1 RETURNING failing_since, now() AS now, enabled
        """,
        endpoint_id,
    )
    return None if row is None else (row["failing_since"], row["now"], row["enabled"])


# --- events and deliveries ----------------------------------------------------------------------------------


async def ingest_event(
    conn: Conn,
    *,
    event_id: uuid.UUID,
    account_id: int,
    event_type: str,
    data: dict[str, Any],
    endpoint_id: int | None = None,
) -> int:
    """Store the event and one delivery per subscribed endpoint; returns the deliveries created now.

    Idempotent: a redelivered event creates nothing new (unique event id, unique endpoint+event).
    A disabled endpoint's delivery is stored as skipped, so it can be replayed later.
    """
    async with conn.transaction():
        await conn.execute(
            """
            INSERT INTO webhook_events (id, account_id, type, data, endpoint_id) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (id) DO NOTHING
            """,
            event_id,
            account_id,
            event_type,
            data,
            endpoint_id,
        )
        # FOR SHARE: an endpoint being disabled right now is waited for, so the delivery cannot be
        # written as pending after the disabling transaction turned the pending ones into skipped.
        status = await conn.execute(
            """
            INSERT INTO webhook_deliveries (endpoint_id, event_id, status, next_attempt_at)
            SELECT e.id, $1, CASE WHEN e.enabled THEN 'pending' ELSE 'skipped' END,
                   CASE WHEN e.enabled THEN now() END
            FROM (
                SELECT id, enabled FROM webhook_endpoints
                WHERE account_id = $2 AND (CASE WHEN $4::bigint IS NULL THEN $3 = ANY (events) ELSE id = $4 END)
                ORDER BY id
                FOR SHARE
            ) e
            ON CONFLICT (endpoint_id, event_id) DO NOTHING
            """,
            event_id,
            account_id,
            event_type,
            endpoint_id,
        )
    return int(status.split()[-1])


LOCK_DUE_ENDPOINTS = """
SELECT e.id, e.rate_tat, clock_timestamp() AS now
FROM webhook_endpoints e
JOIN (
    SELECT endpoint_id, min(next_attempt_at) AS due FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now()
    GROUP BY endpoint_id
) d ON d.endpoint_id = e.id
WHERE e.enabled
ORDER BY d.due
LIMIT $1
FOR NO KEY UPDATE OF e SKIP LOCKED
"""

IN_FLIGHT = """
SELECT endpoint_id, count(*) AS n FROM webhook_deliveries
WHERE endpoint_id = ANY ($1::bigint[]) AND status = 'pending' AND lease_token IS NOT NULL
  AND next_attempt_at > now()
GROUP BY endpoint_id
"""

LEASE = """
UPDATE webhook_deliveries d
SET lease_token = $3, next_attempt_at = now() + make_interval(secs => $4), attempts = d.attempts + 1,
    updated_at = now()
FROM (
    SELECT c.id FROM unnest($1::bigint[], $2::int[]) AS a (endpoint_id, n)
    CROSS JOIN LATERAL (
        SELECT x.id FROM webhook_deliveries x
        WHERE x.endpoint_id = a.endpoint_id AND x.status = 'pending' AND x.next_attempt_at <= now()
        ORDER BY x.next_attempt_at, x.id
        LIMIT a.n
    ) c
) picked, webhook_events ev, webhook_endpoints e
WHERE d.id = picked.id AND d.status = 'pending' AND d.next_attempt_at <= now()
  AND ev.id = d.event_id AND e.id = d.endpoint_id
RETURNING d.id AS delivery_id, d.endpoint_id, d.event_id, ev.type AS event_type, ev.data, ev.created_at AS event_time,
          d.attempts AS attempt, d.step, e.url, e.secret_enc,
          CASE WHEN e.old_secret_expires_at > now() THEN e.old_secret_enc END AS old_secret_enc,
          (SELECT o.correlation_id FROM outbox o WHERE o.id = d.event_id) AS correlation_id
"""


async def lock_due_endpoints(conn: Conn, limit: int) -> list[asyncpg.Record]:
    """Endpoints with due deliveries, locked (skipping those another dispatcher holds): id, rate_tat, now."""
    return await conn.fetch(LOCK_DUE_ENDPOINTS, limit)


async def in_flight(conn: Conn, endpoint_ids: list[int]) -> dict[int, int]:
    return {r["endpoint_id"]: r["n"] for r in await conn.fetch(IN_FLIGHT, endpoint_ids)}


async def lease(conn: Conn, quotas: dict[int, int], lease_s: float) -> list[Lease]:
    token = uuid.uuid4()
    rows = await conn.fetch(LEASE, list(quotas), list(quotas.values()), token, lease_s)
    return [Lease(**{**dict(r), "token": token}) for r in rows]


async def set_rate_tats(conn: Conn, tats: dict[int, datetime]) -> None:
    if tats:
        await conn.execute(
            """
            UPDATE webhook_endpoints e SET rate_tat = t.tat
            FROM unnest($1::bigint[], $2::timestamptz[]) AS t (id, tat) WHERE e.id = t.id
            """,
            list(tats),
            list(tats.values()),
        )


async def insert_attempt(
    conn: Conn,
    *,
    lease: Lease,
    status_code: int | None,
    latency_ms: int,
    error: str | None,
    response_body: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO webhook_attempts (delivery_id, endpoint_id, attempt, status_code, latency_ms, error, response_body)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        lease.delivery_id,
        lease.endpoint_id,
        lease.attempt,
        status_code,
        latency_ms,
        error,
        response_body,
    )


async def finish_delivery(
    conn: Conn,
    lease: Lease,
    *,
    status: str,
    step: int,
    delay_s: float | None,
    status_code: int | None,
    error: str | None,
) -> bool:
    """Record the outcome of a leased delivery. False when the lease was lost (expired, endpoint disabled)."""
    found = await conn.fetchval(
        """
        UPDATE webhook_deliveries
        SET status = $3, step = $4, lease_token = NULL, last_status = $6, last_error = $7, updated_at = now(),
            next_attempt_at = CASE WHEN $5::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $5) END
        WHERE id = $1 AND lease_token = $2 AND status = 'pending'
        RETURNING id
        """,
        lease.delivery_id,
        lease.token,
        status,
        step,
        delay_s,
        status_code,
        error,
    )
    return found is not None


async def replay(
    conn: Conn, *, endpoint_id: int, account_id: int, event_id: uuid.UUID | None, since: datetime | None
) -> int:
    """Queue again one event (`event_id`) or every event since `since` for an endpoint; returns how many.

    Events the endpoint already had a delivery for are re-sent (same `webhook-id`) with a fresh schedule;
    events it was not subscribed to when they happened are included when it subscribes to them now.
    Deliveries already queued are left as they are.
    """
    status = await conn.execute(
        """
        INSERT INTO webhook_deliveries (endpoint_id, event_id, status, next_attempt_at)
        SELECT e.id, ev.id, 'pending', now()
        FROM webhook_endpoints e
        JOIN webhook_events ev ON ev.account_id = e.account_id
        WHERE e.id = $1 AND e.account_id = $2
          AND ($3::uuid IS NULL OR ev.id = $3) AND ($4::timestamptz IS NULL OR ev.created_at >= $4)
          AND (ev.endpoint_id = e.id OR (ev.endpoint_id IS NULL AND ev.type = ANY (e.events))
               OR EXISTS (SELECT 1 FROM webhook_deliveries x WHERE x.endpoint_id = e.id AND x.event_id = ev.id))
        ON CONFLICT (endpoint_id, event_id) DO UPDATE
            SET status = 'pending', step = 0, next_attempt_at = now(), lease_token = NULL, updated_at = now()
            WHERE webhook_deliveries.status <> 'pending'
        """,
        endpoint_id,
        account_id,
        event_id,
        since,
    )
    return int(status.split()[-1])


async def list_attempts(conn: Conn, endpoint_id: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT d.event_id, ev.type, a.attempt, a.status_code, a.latency_ms, a.error, a.created_at, d.status
        FROM webhook_attempts a
        JOIN webhook_deliveries d ON d.id = a.delivery_id
        JOIN webhook_events ev ON ev.id = d.event_id
        WHERE a.endpoint_id = $1
        ORDER BY a.id DESC
        LIMIT $2
        """,
        endpoint_id,
        limit,
    )


async def list_deliveries(conn: Conn, endpoint_id: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT d.id, d.event_id, ev.type, d.status, d.attempts, d.next_attempt_at, d.last_status, d.last_error,
               d.created_at, d.updated_at
        FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
        WHERE d.endpoint_id = $1
        ORDER BY d.id DESC
        LIMIT $2
        """,
        endpoint_id,
        limit,
    )
