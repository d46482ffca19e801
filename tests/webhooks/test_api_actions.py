"""The `webhook.*` actions over HTTP against a real api process allowed to reach the test receivers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from shared.settings import Settings
from tests.support.factories import make_customer
from tests.support.processes import ApiProcess
from tests.support.webhooks import RECEIVER_NETWORK, Receiver, emit, spec_verify, wait_until
from tests.webhooks.conftest import SECRET_KEY


@pytest.fixture(scope="module")
async def webhook_api(settings: Settings, logs_dir: Path) -> AsyncIterator[ApiProcess]:
    process = await ApiProcess(
        settings,
        logs_dir / "api-webhooks.log",
        webhooks_allow_http=True,
        webhooks_allowed_networks=RECEIVER_NETWORK,
        webhook_secret_key=SECRET_KEY,
        relay_enabled=False,
    ).started()
    yield process
    process.stop()


async def call(api: ApiProcess, key: str, action: str, **params: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(api.url + "/api/v2", data={"key": key, "action": action, **params}) as resp,
    ):
        return resp.status, await resp.json()


async def test_webhook_actions_round_trip(
    pool: asyncpg.Pool, webhook_api: ApiProcess, receiver: Receiver, dispatchers
) -> None:
    account_id, key = await make_customer(pool)
    url = receiver.url()
    status, added = await call(webhook_api, key, "webhook.add", url=url, events="order.completed,order.partial")
    assert status == 200, added
    assert added["secret"].startswith("whsec_")
    hook = added["webhook"]
    status, listed = await call(webhook_api, key, "webhook.list")
    assert listed == [
        {
            "webhook": hook,
            "url": url,
            "events": ["order.completed", "order.partial"],
            "enabled": True,
            "disabled_reason": None,
        }
    ]
    assert "secret" not in str(listed)  # shown once only
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT secret_enc FROM webhook_endpoints WHERE id = $1", hook)
    assert added["secret"] not in stored  # encrypted at rest

    # webhook.test goes through the outbox (the relay is off here: nothing is published by this api)
    status, tested = await call(webhook_api, key, "webhook.test", webhook=hook)
    assert status == 200
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT event_type, payload FROM outbox WHERE id = $1::uuid", tested["event"])
    assert row is not None
    assert row["event_type"] == "webhook.test"
    assert row["payload"]["webhook"] == hook

    await dispatchers()
    event_id = await emit(pool, account_id=account_id, event_type="order.completed")
    await wait_until(lambda: receiver.hits)
    assert spec_verify(added["secret"], receiver.hits[0].headers, receiver.hits[0].body)

    async def logged() -> Any:
        status, log = await call(webhook_api, key, "webhook.deliveries", webhook=hook, limit="5")
        assert status == 200
        return log

    log = await wait_until(logged)
    assert log[0]["event"] == str(event_id)
    assert log[0]["type"] == "order.completed"
    assert log[0]["attempt"] == 1
    assert log[0]["status_code"] == 200
    assert isinstance(log[0]["latency_ms"], int)

    status, replayed = await call(webhook_api, key, "webhook.replay", webhook=hook, since=str(int(time.time()) - 60))
    assert (status, replayed) == (200, {"replayed": 1})
    await wait_until(lambda: len(receiver.hits) == 2)
    assert receiver.ids() == [str(event_id)] * 2

    status, rotated = await call(webhook_api, key, "webhook.rotate", webhook=hook)
    assert status == 200
    assert rotated["secret"] != added["secret"]
    status, deleted = await call(webhook_api, key, "webhook.delete", webhook=hook)
    assert (status, deleted) == (200, {"webhook": hook, "deleted": True})
    assert (await call(webhook_api, key, "webhook.list"))[1] == []


async def test_webhook_action_errors(pool: asyncpg.Pool, webhook_api: ApiProcess, receiver: Receiver) -> None:
    _, key = await make_customer(pool)
    other_account, other_key = await make_customer(pool)
    status, body = await call(webhook_api, key, "webhook.add", url="http://127.0.0.1:9/")
    assert status == 400
    assert body == {"error": "Invalid webhook URL: url points to a non-public address (loopback)"}
    status, body = await call(webhook_api, key, "webhook.add", url="http://2130706433/")
    assert status == 400
    assert "loopback" in body["error"]
    status, body = await call(webhook_api, key, "webhook.add", url=receiver.url(), events="order.exploded")
    assert status == 400
    assert body["error"].startswith("Unknown event: order.exploded")
    status, body = await call(webhook_api, key, "webhook.add")
    assert (status, body) == (400, {"error": "Missing required parameter: url"})
    hooks = [(await call(webhook_api, key, "webhook.add", url=receiver.url(f"/{i}")))[1]["webhook"] for i in range(5)]
    status, body = await call(webhook_api, key, "webhook.add", url=receiver.url("/6"))
    assert (status, body) == (400, {"error": "At most 5 webhooks per account"})
    # Another account's webhook is reported exactly like one that does not exist.
    for action in ("webhook.delete", "webhook.test", "webhook.rotate", "webhook.deliveries"):
        assert await call(webhook_api, other_key, action, webhook=hooks[0]) == (400, {"error": "Webhook not found"})
    assert await call(webhook_api, key, "webhook.delete", webhook="99999999") == (400, {"error": "Webhook not found"})
    status, body = await call(webhook_api, key, "webhook.replay", webhook=hooks[0])
    assert (status, body) == (400, {"error": "Give either event or since"})
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM webhook_endpoints WHERE account_id = ANY($1::bigint[])", [other_account])
        await conn.execute("DELETE FROM webhook_endpoints WHERE id = ANY($1::bigint[])", hooks)


async def test_secret_bearing_actions_are_refused_over_get_and_change_nothing(
    pool: asyncpg.Pool, webhook_api: ApiProcess, receiver: Receiver
) -> None:
    account_id, key = await make_customer(pool)

    async def get(action: str, **params: str) -> tuple[int, Any]:
        query = {"key": key, "action": action, **params}
        async with aiohttp.ClientSession() as session, session.get(webhook_api.url + "/api/v2", params=query) as resp:
            assert resp.headers["Cache-Control"] == "no-store"
            return resp.status, await resp.json()

    assert await get("webhook.add", url=receiver.url()) == (
        400,
        {"error": "webhook.add must be sent with POST: its answer holds a secret"},
    )
    assert (await call(webhook_api, key, "webhook.list"))[1] == []
    status, added = await call(webhook_api, key, "webhook.add", url=receiver.url())
    assert status == 200
    hook = added["webhook"]
    async with pool.acquire() as conn:
        before = await conn.fetchval("SELECT secret_enc FROM webhook_endpoints WHERE id = $1", hook)
    assert await get("webhook.rotate", webhook=str(hook)) == (
        400,
        {"error": "webhook.rotate must be sent with POST: its answer holds a secret"},
    )
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT secret_enc FROM webhook_endpoints WHERE id = $1", hook) == before
    # Actions without a secret in their answer still work over GET.
    status, listed = await get("webhook.list")
    assert status == 200
    assert [h["webhook"] for h in listed] == [hook]
    assert account_id


async def test_a_revoking_rotate_signs_with_the_new_secret_only(
    pool: asyncpg.Pool, webhook_api: ApiProcess, receiver: Receiver, dispatchers
) -> None:
    account_id, key = await make_customer(pool)
    status, added = await call(webhook_api, key, "webhook.add", url=receiver.url(), events="order.completed")
    assert status == 200
    hook, first = added["webhook"], added["secret"]
    await dispatchers()

    # Without revoke the old secret keeps signing beside the new one.
    status, rotated = await call(webhook_api, key, "webhook.rotate", webhook=hook)
    assert status == 200
    second = rotated["secret"]
    await emit(pool, account_id=account_id, event_type="order.completed")
    await wait_until(lambda: len(receiver.hits) == 1)
    hit = receiver.hits[0]
    assert len(hit.headers["webhook-signature"].split(" ")) == 2
    assert spec_verify(first, hit.headers, hit.body)
    assert spec_verify(second, hit.headers, hit.body)

    status, body = await call(webhook_api, key, "webhook.rotate", webhook=hook, revoke="yes")
    assert (status, body) == (400, {"error": "revoke must be 1 or 0"})
    status, revoked = await call(webhook_api, key, "webhook.rotate", webhook=hook, revoke="1")
    assert status == 200
    third = revoked["secret"]
    await emit(pool, account_id=account_id, event_type="order.completed")
    await wait_until(lambda: len(receiver.hits) == 2)
    hit = receiver.hits[1]
    assert len(hit.headers["webhook-signature"].split(" ")) == 1
    assert spec_verify(third, hit.headers, hit.body)
    assert not spec_verify(second, hit.headers, hit.body)
    assert not spec_verify(first, hit.headers, hit.body)
