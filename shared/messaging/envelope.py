"""The wire format of an event on RabbitMQ, in one place: built by the relay, parsed by every consumer.

Body: the event payload as JSON. Properties: message id = event id, type = event type (also the routing
key), correlation id (repeated in the `correlation_id` header for tools that only show headers),
persistent, `application/json`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from pamqp.commands import Basic

CORRELATION_HEADER = "correlation_id"
DELIVERY_COUNT_HEADER = "x-delivery-count"


class MalformedMessage(ValueError):
    """A message no handler can ever process: it is dead-lettered at once, never retried."""


@dataclass(frozen=True)
class Envelope:
    event_id: uuid.UUID
    type: str
    payload: dict[str, Any]
    correlation_id: str | None
    # Earlier deliveries of this message that were not acked (the quorum queue's `x-delivery-count`): 0 first.
    delivery_count: int
    redelivered: bool = False


def build_message(
    *, event_id: uuid.UUID, event_type: str, payload_json: str | bytes, correlation_id: str | None
) -> aio_pika.Message:
    """An outgoing message; `payload_json` is the payload already serialised (the outbox keeps it as JSON)."""
    body = payload_json.encode() if isinstance(payload_json, str) else payload_json
    headers: dict[str, Any] = {CORRELATION_HEADER: correlation_id} if correlation_id else {}
    return aio_pika.Message(
        body,
        message_id=str(event_id),
        correlation_id=correlation_id,
        type=event_type,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers=headers,
    )


def publish_properties(*, event_id: uuid.UUID, event_type: str, correlation_id: str | None) -> Basic.Properties:
    """The AMQP properties of `build_message`, built directly for the relay's low-level publisher (the same
    frames on the wire: aio-pika's message layer costs more per message than the rest of the publish)."""
    return Basic.Properties(
        content_type="application/json",
        headers={CORRELATION_HEADER: correlation_id} if correlation_id else {},
        delivery_mode=int(aio_pika.DeliveryMode.PERSISTENT),
        priority=0,
        correlation_id=correlation_id,
        message_id=str(event_id),
        message_type=event_type,
        cluster_id="",
    )


# Built once: json.loads with options builds a new decoder per call, and this runs once per message.
_PAYLOAD_JSON = json.JSONDecoder(parse_float=Decimal)


def parse_message(message: AbstractIncomingMessage) -> Envelope:
    """The envelope of an incoming message, or `MalformedMessage`. Numbers with a fraction become Decimal."""
    try:
        event_id = uuid.UUID(message.message_id or "")
    except ValueError:
        raise MalformedMessage(f"message id {message.message_id!r} is not an event id") from None
    event_type = message.type or message.routing_key
    if not event_type:
        raise MalformedMessage("message has no type")
    try:
        payload = _PAYLOAD_JSON.decode(message.body.decode())
    except (ValueError, UnicodeDecodeError):
        raise MalformedMessage("body is not JSON") from None
    if not isinstance(payload, dict):
        raise MalformedMessage("body is not a JSON object")
    headers = message.headers or {}
    correlation_id = message.correlation_id or _text(headers.get(CORRELATION_HEADER))
    raw_count = headers.get(DELIVERY_COUNT_HEADER, 0)
    delivery_count = raw_count if isinstance(raw_count, int) else 0
    return Envelope(event_id, event_type, payload, correlation_id, delivery_count, bool(message.redelivered))


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None
