"""SQL of the webhook retention purge (shared/webhooks/retention.py runs it).

One batch = one transaction over the next events older than the cutoff, walked by (created_at, id): their
finished deliveries (succeeded, failed, skipped) last changed before the cutoff go with their attempts, then
those of the events that no delivery refers to any more. Pending deliveries are never touched, and keep
their events. Rows another transaction holds are skipped (SKIP LOCKED), so purgers running at once in several
processes share the work and never wait on a dispatcher; what was skipped goes on a later run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.db.types import Conn

# Where a purge run has got to: the last event looked at, (created_at, id).
Position = tuple[datetime, uuid.UUID]

_EVENTS = """
SELECT id, created_at FROM webhook_events
WHERE created_at < $1 AND (created_at, id) > ($2, $3)
ORDER BY created_at, id
LIMIT $4
FOR UPDATE SKIP LOCKED
"""

_FINISHED_DELIVERIES = """
SELECT id FROM webhook_deliveries
WHERE event_id = ANY ($1::uuid[]) AND status <> 'pending' AND updated_at < $2
FOR UPDATE SKIP LOCKED
"""

_DELETE_ATTEMPTS = "DELETE FROM webhook_attempts WHERE delivery_id = ANY ($1::bigint[])"
_DELETE_DELIVERIES = "DELETE FROM webhook_deliveries WHERE id = ANY ($1::bigint[])"
_DELETE_EVENTS = """
DELETE FROM webhook_events ev
WHERE ev.id = ANY ($1::uuid[]) AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = ev.id)
"""

# Before every event: the position a run starts from.
START: Position = (datetime(1970, 1, 1, tzinfo=UTC), uuid.UUID(int=0))


@dataclass(frozen=True)
class PurgedBatch:
    looked_at: int  # events looked at; fewer than the limit: the run is done
    position: Position  # where the next batch starts
    events: int
    deliveries: int
    attempts: int


async def purge_batch(conn: Conn, *, cutoff: datetime, after: Position, limit: int) -> PurgedBatch:
    """Purge what is finished and older than `cutoff` among the next `limit` events after `after`."""
    async with conn.transaction():
        events = await conn.fetch(_EVENTS, cutoff, after[0], after[1], limit)
        if not events:
            return PurgedBatch(0, after, 0, 0, 0)
        event_ids = [r["id"] for r in events]
        delivery_ids = [r["id"] for r in await conn.fetch(_FINISHED_DELIVERIES, event_ids, cutoff)]
        attempts = deliveries = 0
        if delivery_ids:
            attempts = _count(await conn.execute(_DELETE_ATTEMPTS, delivery_ids))
            deliveries = _count(await conn.execute(_DELETE_DELIVERIES, delivery_ids))
        purged_events = _count(await conn.execute(_DELETE_EVENTS, event_ids))
    last = events[-1]
    return PurgedBatch(len(events), (last["created_at"], last["id"]), purged_events, deliveries, attempts)


def _count(status: str) -> int:
    return int(status.split()[-1])


async def cutoff_before(conn: Conn, seconds: float) -> datetime:
    """The database's now() minus `seconds`: the rows' timestamps come from the database's clock."""
    cutoff: datetime = await conn.fetchval("SELECT now() - make_interval(secs => $1)", seconds)
    return cutoff
