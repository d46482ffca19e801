"""SQL of the transactional outbox: written inside the caller's transaction, read by the relay."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from shared.db.types import Conn
from shared.domain.events import Event

INSERT = """
INSERT INTO outbox (id, event_type, payload, correlation_id) VALUES ($1, $2, $3, $4)
"""

# Never-failed rows oldest first; rows that failed before go behind them, so a few rows that cannot be
# published (e.g. unroutable) never starve the rest. SKIP LOCKED lets several relays share the table.
# The payload travels as text: published byte for byte, no JSON round trip through Python floats.
CLAIM = """
SELECT id, event_type, payload::text AS payload, correlation_id, attempts
FROM outbox
WHERE published_at IS NULL AND NOT (id = ANY($2::uuid[]))
ORDER BY attempts, created_at
LIMIT $1
FOR UPDATE SKIP LOCKED
"""

MARK_PUBLISHED = """
UPDATE outbox SET published_at = clock_timestamp()
WHERE id = ANY($1::uuid[])
"""

MARK_FAILED = """
UPDATE outbox AS o SET attempts = o.attempts + 1, last_error = f.error
FROM unnest($1::uuid[], $2::text[]) AS f (id, error)
WHERE o.id = f.id
"""

COUNT_UNPUBLISHED = "SELECT count(*) FROM outbox WHERE published_at IS NULL"

# Published rows older than the cutoff, oldest first (outbox_published_idx, migration 008); rows another purger
# holds are skipped, so purgers in several processes share the work.
PURGE_PUBLISHED = """
DELETE FROM outbox WHERE id = ANY (ARRAY(
    SELECT id FROM outbox
    WHERE published_at IS NOT NULL AND published_at < now() - make_interval(secs => $1)
    ORDER BY published_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
))
"""


@dataclass(frozen=True)
class OutboxRow:
    id: uuid.UUID
    event_type: str
    payload: str  # JSON text
    correlation_id: str | None
    attempts: int


async def add_event(conn: Conn, event: Event) -> None:
    await conn.execute(INSERT, event.id, str(event.type), event.payload, event.correlation_id)


async def add_events(conn: Conn, events: Sequence[Event]) -> None:
    if events:
        await conn.executemany(INSERT, [(e.id, str(e.type), e.payload, e.correlation_id) for e in events])


async def claim_unpublished(conn: Conn, limit: int, exclude: Sequence[uuid.UUID] = ()) -> list[OutboxRow]:
    """Lock up to `limit` unpublished rows for the caller's transaction, skipping rows locked by others and
    the `exclude`d ones (rows the caller keeps out for a while after a failure)."""
    rows = await conn.fetch(CLAIM, limit, list(exclude))
    return [OutboxRow(r["id"], r["event_type"], r["payload"], r["correlation_id"], r["attempts"]) for r in rows]


async def mark_published(conn: Conn, ids: Sequence[uuid.UUID]) -> None:
    if ids:
        await conn.execute(MARK_PUBLISHED, list(ids))


async def mark_failed(conn: Conn, failures: Sequence[tuple[uuid.UUID, str]]) -> None:
    if failures:
        await conn.execute(MARK_FAILED, [f[0] for f in failures], [f[1][:1000] for f in failures])


async def count_unpublished(conn: Conn) -> int:
    return int(await conn.fetchval(COUNT_UNPUBLISHED))


async def purge_published(conn: Conn, *, older_than_s: float, limit: int) -> int:
    """Delete up to `limit` rows published more than `older_than_s` seconds ago; returns how many."""
    status = await conn.execute(PURGE_PUBLISHED, older_than_s, limit)
    return int(status.split()[-1])
