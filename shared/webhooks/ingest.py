"""Fan-out of subscriber events into deliveries: the `webhooks.events` consumer's handler.

Messages handled at the same time are fanned out together, in one statement (`GroupCommit`); each is acked
after that commit. A redelivered event (a crash between the commit and the acks) creates nothing new.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog

from shared.db import webhook_dispatch as db
from shared.db.types import Conn
from shared.domain.events import EventType
from shared.messaging.envelope import Envelope, MalformedMessage

log = structlog.get_logger(__name__)


# Built once (json.dumps with options builds an encoder per call): Decimal and the like become strings.
_DATA_JSON = json.JSONEncoder(default=str)


def event_data(payload: dict[str, Any]) -> str:
    """The body's `data` as JSON text: the payload without the routing field, money kept as the strings it was
    sent as (Decimal and anything else not JSON-native as its string). Stored as JSONB from the text as is."""
    return _DATA_JSON.encode({k: v for k, v in payload.items() if k != "account_id"})


def incoming_event(
    *, event_id: uuid.UUID, event_type: str, payload: dict[str, Any], correlation_id: str | None = None
) -> db.IncomingEvent:
    """The event to store, or `MalformedMessage` (that message alone is dead-lettered)."""
    try:
        account_id = int(payload["account_id"])
    except (KeyError, TypeError, ValueError):
        raise MalformedMessage(f"{event_type} event without an account_id") from None
    endpoint_id: int | None = None
    if event_type == EventType.WEBHOOK_TEST:
        try:
            endpoint_id = int(payload["webhook"])
        except (KeyError, TypeError, ValueError):
            raise MalformedMessage("webhook.test event without a webhook") from None
    return db.IncomingEvent(event_id, account_id, event_type, event_data(payload), endpoint_id, correlation_id)


def envelope_event(envelope: Envelope) -> db.IncomingEvent:
    return incoming_event(
        event_id=envelope.event_id,
        event_type=envelope.type,
        payload=envelope.payload,
        correlation_id=envelope.correlation_id,
    )


async def ingest_batch(conn: Conn, events: Sequence[db.IncomingEvent]) -> int:
    """Store the events and their deliveries in one statement; returns the deliveries created now."""
    created = await db.ingest_events(conn, events)
    log.debug("webhook_events_ingested", events=len(events), deliveries=created)
    return created


async def ingest(pool: asyncpg.Pool, *, event_id: uuid.UUID, event_type: str, payload: dict[str, Any]) -> int:
    """Store one event and its deliveries; returns how many deliveries were created (0 for a redelivery)."""
    event = incoming_event(event_id=event_id, event_type=event_type, payload=payload)
    async with pool.acquire() as conn:
        return await ingest_batch(conn, [event])
