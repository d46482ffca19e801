"""The dispatcher against real receivers: signing, fan-out, retries, status handling, bodies, limits."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from aiohttp import web

from shared.db import webhooks as db
from shared.domain.lifecycle import OrderView, status_event
from shared.domain.statuses import OrderState
from shared.ingress.views import status_answer
from shared.settings import Settings
from shared.webhooks import endpoints
from shared.webhooks.ingest import ingest
from shared.webhooks.secretbox import SecretBox
from tests.support.webhooks import (
    Receiver,
    attempts,
    deliveries,
    emit,
    register,
    spec_verify,
    wait_until,
)


async def test_delivery_is_signed_and_shaped_as_the_contract_says(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver, dispatchers
) -> None:
    endpoint_id, secret = await register(pool, wh_settings, account_id=account, url=receiver.url())
    await dispatchers()
    event_id = await emit(
        pool, account_id=account, status="Partial", charge="0.27819", remains="157", start_count="3572", currency="USD"
    )
    await wait_until(lambda: receiver.hits)
    hit = receiver.hits[0]
    assert spec_verify(secret, hit.headers, hit.body)
    assert hit.headers["webhook-id"] == str(event_id)
    assert abs(int(hit.headers["webhook-timestamp"]) - time.time()) < 10
    assert hit.headers["content-type"] == "application/json"
    body = json.loads(hit.body)
    assert body["type"] == "order.status_changed"
    datetime.fromisoformat(body["timestamp"])
    assert body["data"] == {
        "order": 1,
        "status": "Partial",
        "charge": "0.27819",
        "remains": "157",
        "start_count": "3572",
        "currency": "USD",
    }
    await wait_until(lambda: _status(pool, endpoint_id, "succeeded"))
    [attempt] = await attempts(pool, endpoint_id)
    assert attempt["status_code"] == 200
    assert attempt["attempt"] == 1
    assert attempt["error"] is None
    assert attempt["response_body"] == "ok"
    assert attempt["latency_ms"] >= 0


@pytest.mark.parametrize(
    ("state", "charge", "refunded", "remains", "shown"),
    [
        (OrderState.CANCELED, "2.50000", "2.50000", 2500, "0"),  # fully refunded: "0", never "0.00"
        (OrderState.PARTIAL, "0.77700", "0.12300", 123, "0.654"),
        (OrderState.COMPLETED, "2.00000", "0", 0, "2.00"),
    ],
)
async def test_order_event_charge_reads_as_the_api_status_shows_it(
    pool: asyncpg.Pool,
    wh_settings: Settings,
    account: int,
    receiver: Receiver,
    dispatchers,
    state: OrderState,
    charge: str,
    refunded: str,
    remains: int,
    shown: str,
) -> None:
    await register(pool, wh_settings, account_id=account, url=receiver.url())
    await dispatchers()
    view = OrderView(
        id=9, account_id=account, type="Default", state=state, quantity=2500, charge=Decimal(charge),
        refunded=Decimal(refunded), currency="USD",
    )  # fmt: skip
    # The worker's event payload, delivered...
    event = status_event(view, state=state, refunded=Decimal(refunded), start_count=10, remains=remains)
    payload = event.to_payload()
    await ingest(pool, event_id=uuid.uuid4(), event_type="order.status_changed", payload=payload)
    await wait_until(lambda: receiver.hits)
    delivered = json.loads(receiver.hits[0].body)["data"]["charge"]
    # ... and the api's `status` answer for the same order carry one and the same string.
    # (the columns as `status_columns` reads them: the charge after refunds as NUMERIC(20, 5) text)
    columns = (state, f"{Decimal(charge) - Decimal(refunded):.5f}", 2500, 10, remains, "USD")
    assert delivered == status_answer(columns)["charge"] == shown


async def _status(pool: asyncpg.Pool, endpoint_id: int, status: str) -> bool:
    rows = await deliveries(pool, endpoint_id)
    return bool(rows) and all(r["status"] == status for r in rows)


async def test_redelivered_event_makes_one_delivery_per_endpoint(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver, dispatchers
) -> None:
    first, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/a"))
    second, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/b"))
    narrow, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/c"), events="order.completed")
    from shared.webhooks.ingest import ingest

    event_id = await emit(pool, account_id=account)
    payload = {"account_id": account, "order": 1, "status": "In progress"}
    # The broker redelivers: again, and several at once.
    created = await asyncio.gather(
        *[ingest(pool, event_id=event_id, event_type="order.status_changed", payload=payload) for _ in range(5)]
    )
    assert sum(created) == 0
    assert len(await deliveries(pool, first)) == 1
    assert len(await deliveries(pool, second)) == 1
    assert await deliveries(pool, narrow) == []  # not subscribed to this type
    await dispatchers()
    await wait_until(lambda: len(receiver.hits) >= 2)
    await asyncio.sleep(0.3)
    assert sorted(h.path for h in receiver.hits) == ["/a", "/b"]
    assert set(receiver.ids()) == {str(event_id)}


async def test_other_accounts_events_are_not_delivered(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver
) -> None:
    from tests.support.factories import make_account

    endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
    other = await make_account(pool)
    await emit(pool, account_id=other)
    assert await deliveries(pool, endpoint_id) == []


async def test_retries_keep_the_webhook_id_and_follow_the_schedule(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers
) -> None:
    async def flaky(_request: web.Request, r: Receiver) -> web.StreamResponse:
        return web.Response(status=500 if len(r.hits) <= 2 else 200)

    receiver = await Receiver(flaky).start()
    try:
        endpoint_id, secret = await register(pool, wh_settings, account_id=account, url=receiver.url())
        await dispatchers()
        event_id = await emit(pool, account_id=account)
        await wait_until(lambda: _status(pool, endpoint_id, "succeeded"))
        assert receiver.ids() == [str(event_id)] * 3
        assert len({h.body for h in receiver.hits}) == 1  # the same body each time
        assert all(spec_verify(secret, h.headers, h.body) for h in receiver.hits)
        gaps = [b.at - a.at for a, b in zip(receiver.hits, receiver.hits[1:], strict=False)]
        assert all(g >= 0.3 * 0.95 for g in gaps), gaps  # the schedule's delay, no jitter configured
        rows = await attempts(pool, endpoint_id)
        assert [(r["attempt"], r["status_code"]) for r in rows] == [(1, 500), (2, 500), (3, 200)]
        assert rows[0]["error"] == "HTTP 500"
    finally:
        await receiver.stop()


async def test_delivery_fails_when_the_schedule_is_exhausted(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers
) -> None:
    async def down(_request: web.Request, _r: Receiver) -> web.StreamResponse:
        return web.Response(status=502)

    receiver = await Receiver(down).start()
    try:
        endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
        await dispatchers(webhook_retry_schedule_s=[0.1, 0.1])
        await emit(pool, account_id=account)
        await wait_until(lambda: _status(pool, endpoint_id, "failed"))
        assert len(receiver.hits) == 3  # the first attempt and two retries
        [row] = await deliveries(pool, endpoint_id)
        assert row["attempts"] == 3
        assert row["last_status"] == 502
        assert row["next_attempt_at"] is None
    finally:
        await receiver.stop()


async def test_redirects_are_failures_and_never_followed(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers
) -> None:
    async def redirect(request: web.Request, _r: Receiver) -> web.StreamResponse:
        if request.path == "/hook":
            raise web.HTTPFound("/elsewhere")
        return web.Response(text="followed")

    receiver = await Receiver(redirect).start()
    try:
        endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
        await dispatchers(webhook_retry_schedule_s=[0.1])
        await emit(pool, account_id=account)
        await wait_until(lambda: _status(pool, endpoint_id, "failed"))
        assert [h.path for h in receiver.hits] == ["/hook", "/hook"]
        assert [r["status_code"] for r in await attempts(pool, endpoint_id)] == [302, 302]
    finally:
        await receiver.stop()


async def test_410_disables_the_endpoint_and_later_events_are_skipped(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers
) -> None:
    async def gone(_request: web.Request, _r: Receiver) -> web.StreamResponse:
        return web.Response(status=410)

    receiver = await Receiver(gone).start()
    try:
        endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
        await dispatchers()
        await emit(pool, account_id=account)
        await wait_until(lambda: _status(pool, endpoint_id, "failed"))
        async with pool.acquire() as conn:
            endpoint = await db.get_endpoint(conn, endpoint_id)
        assert endpoint is not None
        assert not endpoint.enabled
        assert endpoint.disabled_reason is not None
        assert "410" in endpoint.disabled_reason
        later = await emit(pool, account_id=account)
        await asyncio.sleep(0.3)
        rows = {r["event_id"]: r["status"] for r in await deliveries(pool, endpoint_id)}
        assert rows[later] == "skipped"
        assert len(receiver.hits) == 1
    finally:
        await receiver.stop()


async def test_retry_after_of_429_and_503_is_honoured_and_clamped(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers
) -> None:
    async def busy(request: web.Request, _r: Receiver) -> web.StreamResponse:
        if request.path == "/429":
            return web.Response(status=429, headers={"Retry-After": "30"})
        return web.Response(status=503, headers={"Retry-After": "999999"})

    receiver = await Receiver(busy).start()
    try:
        limited, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/429"))
        clamped, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/503"))
        await dispatchers(webhook_retry_after_max_s=120.0)
        await emit(pool, account_id=account)
        await wait_until(lambda: len(receiver.hits) >= 2)
        await asyncio.sleep(0.2)
        for endpoint_id, expected in ((limited, 30), (clamped, 120)):
            [row] = await deliveries(pool, endpoint_id)
            delay = (row["next_attempt_at"] - row["updated_at"]).total_seconds()
            assert row["status"] == "pending"
            assert abs(delay - expected) < 1, (delay, expected)
        assert len(receiver.hits) == 2  # nothing sent early
    finally:
        await receiver.stop()


async def test_a_slow_answer_times_out(pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers) -> None:
    async def slow(_request: web.Request, _r: Receiver) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response()

    receiver = await Receiver(slow).start()
    try:
        endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
        await dispatchers(webhook_timeout_s=0.5)
        started = time.monotonic()
        await emit(pool, account_id=account)
        rows = await wait_until(lambda: attempts(pool, endpoint_id))
        assert time.monotonic() - started < 3
        assert rows[0]["status_code"] is None
        assert rows[0]["error"] == "timeout after 0.5s"
        assert 450 <= rows[0]["latency_ms"] < 2000
        [delivery] = await deliveries(pool, endpoint_id)
        assert delivery["status"] == "pending"
        assert delivery["step"] == 1
    finally:
        await receiver.stop()


async def _endless_body(request: web.Request, r: Receiver, pause: float) -> web.StreamResponse:
    resp = web.StreamResponse(status=200)
    await resp.prepare(request)
    try:
        for _ in range(100_000):
            await resp.write(b"x" * (1 if pause else 65536))
            if pause:
                await asyncio.sleep(pause)
    except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
        r.closed_early += 1
        raise
    return resp


async def test_huge_body_is_read_up_to_the_cap_then_the_connection_closed(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers
) -> None:
    async def huge(request: web.Request, r: Receiver) -> web.StreamResponse:
        return await _endless_body(request, r, pause=0)  # 6.5 GB if read to the end

    receiver = await Receiver(huge).start()
    try:
        endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
        await dispatchers(webhook_response_max_bytes=1024)
        await emit(pool, account_id=account)
        await wait_until(lambda: _status(pool, endpoint_id, "succeeded"))
        [attempt] = await attempts(pool, endpoint_id)
        assert attempt["response_body"] == "x" * 1024
        await wait_until(lambda: receiver.closed_early == 1, timeout=5)
    finally:
        await receiver.stop()


async def test_slow_body_is_cut_at_the_deadline_and_the_status_counts(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers
) -> None:
    async def dribble(request: web.Request, r: Receiver) -> web.StreamResponse:
        return await _endless_body(request, r, pause=0.1)

    receiver = await Receiver(dribble).start()
    try:
        endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
        await dispatchers(webhook_timeout_s=0.6)
        await emit(pool, account_id=account)
        await wait_until(lambda: _status(pool, endpoint_id, "succeeded"), timeout=5)
        [attempt] = await attempts(pool, endpoint_id)
        assert attempt["status_code"] == 200
        assert attempt["error"] == "response body timed out"
        assert 1 <= len(attempt["response_body"]) <= 10
        await wait_until(lambda: receiver.closed_early == 1, timeout=5)
    finally:
        await receiver.stop()


async def test_auto_disable_skipped_events_and_replay_after_reenable(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers
) -> None:
    healthy = False

    async def until_fixed(_request: web.Request, _r: Receiver) -> web.StreamResponse:
        return web.Response(status=200 if healthy else 500)

    receiver = await Receiver(until_fixed).start()
    try:
        endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
        await dispatchers(webhook_retry_schedule_s=[0.2] * 20, webhook_disable_after=timedelta(seconds=0.5))
        first = await emit(pool, account_id=account)

        async def disabled() -> bool:
            async with pool.acquire() as conn:
                e = await db.get_endpoint(conn, endpoint_id)
            return e is not None and not e.enabled

        await wait_until(disabled, timeout=5)
        async with pool.acquire() as conn:
            endpoint = await db.get_endpoint(conn, endpoint_id)
        assert endpoint is not None
        assert (endpoint.disabled_reason or "").startswith("failing continuously since")
        hits_when_disabled = len(receiver.hits)
        assert hits_when_disabled >= 3
        second = await emit(pool, account_id=account)
        await asyncio.sleep(0.4)
        states = {r["event_id"]: r["status"] for r in await deliveries(pool, endpoint_id)}
        assert states == {first: "skipped", second: "skipped"}
        assert len(receiver.hits) == hits_when_disabled  # nothing sent while disabled
        async with pool.acquire() as conn:
            with pytest.raises(endpoints.WebhookDisabled):
                await endpoints.replay(conn, account_id=account, endpoint_id=endpoint_id, event_id=first, since=None)
            healthy = True
            assert await db.enable_endpoint(conn, endpoint_id)
            since = datetime.now(UTC) - timedelta(seconds=60)
            replayed = await endpoints.replay(
                conn, account_id=account, endpoint_id=endpoint_id, event_id=None, since=since
            )
        assert replayed == 2
        await wait_until(lambda: _status(pool, endpoint_id, "succeeded"))
        assert set(receiver.ids()[hits_when_disabled:]) == {str(first), str(second)}
        # One event again, by id: re-sent with the same webhook-id.
        async with pool.acquire() as conn:
            assert (
                await endpoints.replay(conn, account_id=account, endpoint_id=endpoint_id, event_id=second, since=None)
                == 1
            )
        await wait_until(lambda: receiver.ids().count(str(second)) == 2)
    finally:
        await receiver.stop()


async def test_rotation_signs_with_both_secrets_for_the_overlap(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver, dispatchers
) -> None:
    endpoint_id, old = await register(pool, wh_settings, account_id=account, url=receiver.url())
    overlap = wh_settings.model_copy(update={"webhook_rotation_overlap_s": 1.0})
    async with pool.acquire() as conn:
        new = await endpoints.rotate(conn, overlap, SecretBox(overlap), account_id=account, endpoint_id=endpoint_id)
    assert new != old
    await dispatchers()
    await emit(pool, account_id=account)
    await wait_until(lambda: receiver.hits)
    hit = receiver.hits[0]
    assert len(hit.headers["webhook-signature"].split(" ")) == 2
    assert spec_verify(old, hit.headers, hit.body)
    assert spec_verify(new, hit.headers, hit.body)
    await asyncio.sleep(1.1)  # the overlap is over
    await emit(pool, account_id=account)
    await wait_until(lambda: len(receiver.hits) == 2)
    hit = receiver.hits[1]
    assert len(hit.headers["webhook-signature"].split(" ")) == 1
    assert spec_verify(new, hit.headers, hit.body)
    assert not spec_verify(old, hit.headers, hit.body)


async def test_per_endpoint_concurrency_holds_across_dispatchers(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers
) -> None:
    async def slow_ok(_request: web.Request, _r: Receiver) -> web.StreamResponse:
        await asyncio.sleep(0.2)
        return web.Response()

    receiver = await Receiver(slow_ok).start()
    try:
        endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
        for _ in range(12):
            await emit(pool, account_id=account)
        await dispatchers(webhook_endpoint_concurrency=2)
        await dispatchers(webhook_endpoint_concurrency=2)
        await wait_until(lambda: _status(pool, endpoint_id, "succeeded"), timeout=10)
        assert len(receiver.hits) == 12
        assert receiver.max_in_flight == 2
    finally:
        await receiver.stop()


async def test_per_endpoint_rate_limit_is_enforced(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver, dispatchers
) -> None:
    endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
    for _ in range(16):
        await emit(pool, account_id=account)
    await dispatchers(webhook_endpoint_rate_per_s=10.0)
    await dispatchers(webhook_endpoint_rate_per_s=10.0)
    await wait_until(lambda: _status(pool, endpoint_id, "succeeded"), timeout=10)
    times = [h.at for h in receiver.hits]
    assert len(times) == 16
    # 10/s with a burst of 1: 16 requests need 1.5 s; unlimited they take a few milliseconds.
    assert times[-1] - times[0] >= 1.4
    assert all(sum(1 for t in times if start <= t < start + 1.0) <= 11 for start in times)


async def test_at_most_five_endpoints_per_account(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver
) -> None:
    for i in range(5):
        await register(pool, wh_settings, account_id=account, url=receiver.url(f"/{i}"))
    with pytest.raises(endpoints.WebhookLimitReached, match="At most 5 webhooks per account"):
        await register(pool, wh_settings, account_id=account, url=receiver.url("/6"))
