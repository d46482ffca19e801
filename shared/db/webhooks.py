"""SQL of webhooks: endpoints, replay and the delivery log (the dispatcher's hot path: `webhook_dispatch`).

Callers own the transaction; functions that need several statements to be atomic open a nested one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

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
    """The new secret; the current one keeps signing for `overlap_s` seconds, or stops at once when it is 0."""
    found = await conn.fetchval(
        """
        UPDATE webhook_endpoints
        SET old_secret_enc = CASE WHEN $4::float8 > 0 THEN secret_enc END,
            old_secret_expires_at = CASE WHEN $4::float8 > 0 THEN now() + make_interval(secs => $4) END,
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


async def secrets_for_update(conn: Conn) -> list[asyncpg.Record]:
    """Every endpoint's encrypted secrets (the previous one only while it still signs), locked; in a transaction."""
    return await conn.fetch(
        """
        SELECT id, secret_enc, CASE WHEN old_secret_expires_at > now() THEN old_secret_enc END AS old_secret_enc
        FROM webhook_endpoints ORDER BY id FOR UPDATE
        """
    )


async def set_secrets(conn: Conn, endpoint_id: int, secret_enc: str, old_secret_enc: str | None) -> None:
    """Store re-encrypted secrets; an expired previous secret (`old_secret_enc` None) is cleared."""
    await conn.execute(
        """
        UPDATE webhook_endpoints
        SET secret_enc = $2, old_secret_enc = $3,
            old_secret_expires_at = CASE WHEN $3::text IS NULL THEN NULL ELSE old_secret_expires_at END
        WHERE id = $1
        """,
        endpoint_id,
        secret_enc,
        old_secret_enc,
    )


# Enabling and disabling lock the endpoint FOR UPDATE, the one lock the fan-out's FOR KEY SHARE waits for: an
# event fanned out meanwhile is stored after the change, as what the endpoint is now (pending or skipped).
# Nothing else (the dispatchers' claims, their failure bookkeeping) makes the fan-out wait.
LOCK_ENDPOINT = "SELECT 1 FROM webhook_endpoints WHERE id = $1 FOR UPDATE"


async def disable_endpoint(conn: Conn, endpoint_id: int, reason: str) -> bool:
    """Disable an endpoint; its queued deliveries (not those being sent right now) become skipped."""
    async with conn.transaction():
        await conn.execute(LOCK_ENDPOINT, endpoint_id)
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
    async with conn.transaction():
        await conn.execute(LOCK_ENDPOINT, endpoint_id)
        found = await conn.fetchval(
            """
            UPDATE webhook_endpoints
            SET enabled = TRUE, disabled_reason = NULL, disabled_at = NULL, failing_since = NULL, updated_at = now()
            WHERE id = $1 RETURNING id
            """,
            endpoint_id,
        )
        return found is not None


# --- events and deliveries ----------------------------------------------------------------------------------


async def replay(
    conn: Conn, *, endpoint_id: int, account_id: int, event_id: uuid.UUID | None, since: datetime | None
) -> int:
    """Queue again one event (`event_id`) or every event since `since` for an endpoint; returns how many.

    Events the endpoint already had a delivery for are re-sent (same `webhook-id`) with a fresh schedule;
    events it was not subscribed to when they happened are included when it subscribes to them now.
    Deliveries already queued are left as they are. The events are locked (KEY SHARE) as they are read: an
    event the retention purge is deleting right now is waited for and then left out, not failed on.
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
        FOR KEY SHARE OF ev
        ON CONFLICT (endpoint_id, event_id) DO UPDATE
            SET status = 'pending', step = 0, run_attempts = 0, next_attempt_at = now(), lease_token = NULL,
                updated_at = now()
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
