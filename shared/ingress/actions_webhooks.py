"""The `webhook.*` actions: thin translations of parameters into the use cases of `shared.webhooks.endpoints`."""

from __future__ import annotations

from typing import Any

from shared.db import webhooks as webhooks_db
from shared.errors import InvalidParameter
from shared.ingress.params import parse_id
from shared.ingress.registry import ActionContext, action
from shared.net.guard import AddressGuard
from shared.settings import Settings
from shared.webhooks import endpoints
from shared.webhooks.endpoints import WebhookNotFound
from shared.webhooks.secretbox import SecretBox

_boxes: dict[int, SecretBox] = {}


def _box(settings: Settings) -> SecretBox:
    # One per settings object (the process has one): the key is parsed once, the dev-key warning logged once.
    box = _boxes.get(id(settings))
    if box is None:
        box = _boxes[id(settings)] = SecretBox(settings)
    return box


def _webhook_id(ctx: ActionContext) -> int:
    return parse_id(ctx.param("webhook"), WebhookNotFound)


@action("webhook.add", post_only=True)
async def webhook_add(ctx: ActionContext) -> dict[str, Any]:
    guard = AddressGuard(ctx.settings.webhooks_allowed_networks)
    try:
        async with ctx.connection() as conn:
            endpoint_id, secret = await endpoints.add_endpoint(
                conn,
                ctx.settings,
                guard,
                _box(ctx.settings),
                account_id=ctx.account_id,
                url=ctx.param("url"),
                events=ctx.params.get("events"),
            )
    finally:
        await guard.close()
    return {"webhook": endpoint_id, "secret": secret}


@action("webhook.list")
async def webhook_list(ctx: ActionContext) -> list[dict[str, Any]]:
    async with ctx.connection() as conn:
        found = await webhooks_db.list_endpoints(conn, ctx.account_id)
    return [endpoints.describe(e) for e in found]


@action("webhook.delete")
async def webhook_delete(ctx: ActionContext) -> dict[str, Any]:
    endpoint_id = _webhook_id(ctx)
    async with ctx.connection() as conn:
        if not await webhooks_db.delete_endpoint(conn, endpoint_id, ctx.account_id):
            raise WebhookNotFound()
    return {"webhook": endpoint_id, "deleted": True}


@action("webhook.test")
async def webhook_test(ctx: ActionContext) -> dict[str, Any]:
    endpoint_id = _webhook_id(ctx)
    async with ctx.connection() as conn, conn.transaction():
        event_id = await endpoints.send_test(
            conn, account_id=ctx.account_id, endpoint_id=endpoint_id, correlation_id=ctx.correlation_id
        )
    return {"webhook": endpoint_id, "event": str(event_id)}


@action("webhook.deliveries")
async def webhook_deliveries(ctx: ActionContext) -> list[dict[str, Any]]:
    endpoint_id = _webhook_id(ctx)
    limit_text = ctx.params.get("limit", "").strip()
    limit = parse_id(limit_text, _BadLimit) if limit_text else 20
    async with ctx.connection() as conn:
        return await endpoints.recent_attempts(conn, account_id=ctx.account_id, endpoint_id=endpoint_id, limit=limit)


@action("webhook.replay")
async def webhook_replay(ctx: ActionContext) -> dict[str, Any]:
    endpoint_id = _webhook_id(ctx)
    event_id, since = endpoints.parse_replay_target(ctx.params.get("event"), ctx.params.get("since"))
    async with ctx.connection() as conn:
        replayed = await endpoints.replay(
            conn, account_id=ctx.account_id, endpoint_id=endpoint_id, event_id=event_id, since=since
        )
    return {"replayed": replayed}


@action("webhook.rotate", post_only=True)
async def webhook_rotate(ctx: ActionContext) -> dict[str, Any]:
    endpoint_id = _webhook_id(ctx)
    revoke = _flag(ctx.params.get("revoke", ""), "revoke")
    async with ctx.connection() as conn:
        secret = await endpoints.rotate(
            conn, ctx.settings, _box(ctx.settings), account_id=ctx.account_id, endpoint_id=endpoint_id, revoke=revoke
        )
    return {"webhook": endpoint_id, "secret": secret}


def _flag(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value in ("", "0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise InvalidParameter(f"{name} must be 1 or 0")


class _BadLimit(InvalidParameter):
    message = "limit must be a positive integer"
