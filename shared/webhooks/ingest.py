"""Fan-out of a subscriber event into deliveries: the `webhooks.events` consumer's handler."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import structlog

from shared.db import webhooks as db
from shared.domain.events import EventType
from shared.messaging.envelope import Envelope, MalformedMessage

log = structlog.get_logger(__name__)


def event_data(payload: dict[str, Any]) -> dict[str, Any]:
    """The body's `data`: the payload without the routing field, money kept as the strings it was sent as."""
    data = {k: v for k, v in payload.items() if k != "account_id"}
    # Decimal (and anything else not JSON-native) as its string, the contract's form for money.
    loaded: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return loaded


async def ingest(pool: asyncpg.Pool, *, event_id: uuid.UUID, event_type: str, payload: dict[str, Any]) -> int:
    """Store the event and its deliveries; returns how many deliveries were created (0 for a redelivery)."""
    try:
        account_id = int(payload["account_id"])
    except (KeyError, TypeError, ValueError):
        raise MalformedMessage(f"{event_type} event without an account_id") from None
    endpoint_id: int | None = None
    if event_type == EventType.WEBHOOK_TEST:
        endpoint_id = int(payload["webhook"])
    async with pool.acquire() as conn:
        created = await db.ingest_event(
            conn,
            event_id=event_id,
            account_id=account_id,
            event_type=event_type,
            data=event_data(payload),
            endpoint_id=endpoint_id,
        )
    log.debug("webhook_event_ingested", event_id=str(event_id), event_type=event_type, deliveries=created)
    return created


async def ingest_envelope(pool: asyncpg.Pool, envelope: Envelope) -> int:
    return await ingest(pool, event_id=envelope.event_id, event_type=envelope.type, payload=envelope.payload)
