"""Subscription use cases shared by the api's `webhook.*` actions and the admin CLI.

Each takes a connection (the caller owns it) and raises `shared.errors.PanelError`s with public messages.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from shared.db import outbox
from shared.db import webhooks as db
from shared.db.types import Conn
from shared.domain.bounds import parse_client_int
from shared.domain.events import SUBSCRIBER_EVENTS, WebhookTest, event
from shared.errors import InvalidParameter, ValidationFailed
from shared.net.guard import AddressGuard, InvalidUrl
from shared.settings import Settings
from shared.webhooks.secretbox import SecretBox
from shared.webhooks.signing import generate_secret

SUBSCRIBABLE = tuple(str(e) for e in SUBSCRIBER_EVENTS)
DELIVERIES_LIMIT_MAX = 100
# `webhook.replay since=`: the last second of year 9999.
SINCE_MAX = 253_402_300_799


class WebhookNotFound(ValidationFailed):
    message = "Webhook not found"


class WebhookLimitReached(ValidationFailed):
    pass


class WebhookDisabled(ValidationFailed):
    message = "Webhook is disabled"


def parse_events(text: str | None) -> list[str]:
    """The events of a subscription: comma-separated names, empty or absent meaning all of them."""
    names = sorted({part.strip() for part in (text or "").split(",") if part.strip()})
    if not names:
        return list(SUBSCRIBABLE)
    unknown = [n for n in names if n not in SUBSCRIBABLE]
    if unknown:
        raise InvalidParameter(f"Unknown event: {unknown[0]}; events are {', '.join(SUBSCRIBABLE)}")
    return names


async def add_endpoint(
    conn: Conn,
    settings: Settings,
    guard: AddressGuard,
    box: SecretBox,
    *,
    account_id: int,
    url: str,
    events: str | None,
) -> tuple[int, str]:
    """Register an endpoint; returns its id and its secret (shown once, stored encrypted)."""
    names = parse_events(events)
    try:
        await guard.check_destination(url, allow_http=settings.webhooks_allow_http)
    except InvalidUrl as exc:
        raise InvalidParameter(f"Invalid webhook URL: {exc}") from exc
    secret = generate_secret()
    endpoint_id = await db.insert_endpoint(
        conn,
        account_id=account_id,
        url=url,
        events=names,
        secret_enc=box.encrypt(secret),
        max_endpoints=settings.webhook_max_endpoints,
    )
    if endpoint_id is None:
        raise WebhookLimitReached(f"At most {settings.webhook_max_endpoints} webhooks per account")
    return endpoint_id, secret


def describe(endpoint: db.Endpoint) -> dict[str, Any]:
    return {
        "webhook": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.events,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
    }


async def owned(conn: Conn, account_id: int, endpoint_id: int) -> db.Endpoint:
    endpoint = await db.get_endpoint(conn, endpoint_id, account_id)
    if endpoint is None:
        raise WebhookNotFound()
    return endpoint


async def rotate(
    conn: Conn, settings: Settings, box: SecretBox, *, account_id: int, endpoint_id: int, revoke: bool = False
) -> str:
    """A new secret; the old one signs beside it for the rotation overlap, or never again with `revoke`."""
    secret = generate_secret()
    overlap_s = 0.0 if revoke else settings.webhook_rotation_overlap_s
    if not await db.rotate_secret(conn, endpoint_id, account_id, box.encrypt(secret), overlap_s):
        raise WebhookNotFound()
    return secret


async def send_test(conn: Conn, *, account_id: int, endpoint_id: int, correlation_id: str | None) -> uuid.UUID:
    """Queue a `webhook.test` event for one endpoint, through the outbox like every other event."""
    await owned(conn, account_id, endpoint_id)
    test = event(WebhookTest.TYPE, WebhookTest(account_id=account_id, webhook=endpoint_id), correlation_id)
    await outbox.add_event(conn, test)
    return test.id


async def recent_attempts(conn: Conn, *, account_id: int, endpoint_id: int, limit: int) -> list[dict[str, Any]]:
    await owned(conn, account_id, endpoint_id)
    rows = await db.list_attempts(conn, endpoint_id, max(1, min(limit, DELIVERIES_LIMIT_MAX)))
    return [
        {
            "event": str(r["event_id"]),
            "type": r["type"],
            "attempt": r["attempt"],
            "status_code": r["status_code"],
            "latency_ms": r["latency_ms"],
            "error": r["error"],
            "time": r["created_at"].isoformat(),
            "delivery_status": r["status"],
        }
        for r in rows
    ]


async def replay(
    conn: Conn, *, account_id: int, endpoint_id: int, event_id: uuid.UUID | None, since: datetime | None
) -> int:
    endpoint = await owned(conn, account_id, endpoint_id)
    if not endpoint.enabled:
        raise WebhookDisabled()
    return await db.replay(conn, endpoint_id=endpoint_id, account_id=account_id, event_id=event_id, since=since)


def parse_replay_target(event: str | None, since: str | None) -> tuple[uuid.UUID | None, datetime | None]:
    if bool(event) == bool(since):
        raise InvalidParameter("Give either event or since")
    if event:
        try:
            return uuid.UUID(event), None
        except ValueError:
            raise InvalidParameter("event must be an event id") from None
    assert since is not None
    try:
        seconds = parse_client_int("since", since, maximum=SINCE_MAX)
        return None, datetime.fromtimestamp(seconds, UTC)
    except (InvalidParameter, OverflowError, OSError):
        raise InvalidParameter("since must be a unix time in seconds") from None
