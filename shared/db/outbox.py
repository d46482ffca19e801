"""SQL of the transactional outbox: written inside the caller's transaction, read by the relay."""

from __future__ import annotations

from collections.abc import Sequence

from shared.db.types import Conn
from shared.domain.events import Event

INSERT = """
INSERT INTO outbox (id, event_type, payload, correlation_id) VALUES ($1, $2, $3, $4)
"""


async def add_event(conn: Conn, event: Event) -> None:
    await conn.execute(INSERT, event.id, str(event.type), event.payload, event.correlation_id)


async def add_events(conn: Conn, events: Sequence[Event]) -> None:
    if events:
        await conn.executemany(INSERT, [(e.id, str(e.type), e.payload, e.correlation_id) for e in events])
