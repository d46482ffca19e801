"""`python -m services.webhooks` as real processes: the broker path, two dispatchers at once, SIGKILL mid-send."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from shared.db import outbox
from shared.domain.events import Event, EventType
from shared.messaging import topology
from shared.messaging.connection import connect as connect_amqp
from shared.messaging.envelope import build_message
from shared.messaging.relay import OutboxRelay
from shared.settings import Settings
from shared.webhooks import endpoints
from tests.support.processes import ManagedProcess, settings_env
from tests.support.webhooks import Receiver, attempts, deliveries, emit, register, spec_verify, wait_until
from tests.webhooks.conftest import SECRET_KEY


@pytest.fixture
async def spawn(wh_settings: Settings, logs_dir: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[ManagedProcess] = []

    async def start(name: str, **overrides: Any) -> ManagedProcess:
        env = settings_env(wh_settings, webhook_secret_key=SECRET_KEY, **overrides)
        proc = ManagedProcess("services.webhooks", env, logs_dir / f"{name}.log").start()
        started.append(proc)
        await wait_until(lambda: "consumer_started" in proc.log_text() or not proc.alive(), timeout=30)
        assert proc.alive(), proc.log_text()[-3000:]
        return proc

    yield start
    for proc in started:
        proc.stop(timeout=10)


async def test_events_flow_from_the_outbox_through_the_broker_to_the_receiver(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver, spawn
) -> None:
    endpoint_id, secret = await register(pool, wh_settings, account_id=account, url=receiver.url())
    await spawn("e2e")
    completed = Event(
        EventType.ORDER_COMPLETED,
        {"account_id": account, "order": 42, "status": "Completed", "charge": "1.80000", "remains": "0",
         "start_count": "10", "currency": "USD"},
    )  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add_event(conn, completed)
        test_event = await endpoints.send_test(conn, account_id=account, endpoint_id=endpoint_id, correlation_id="c1")
    relay = OutboxRelay(wh_settings, pool)
    await relay.start()
    try:
        await wait_until(lambda: len(receiver.hits) >= 2, timeout=15)
    finally:
        await relay.stop()
    by_id = {h.headers["webhook-id"]: h for h in receiver.hits}
    assert set(by_id) == {str(completed.id), str(test_event)}
    assert all(spec_verify(secret, h.headers, h.body) for h in receiver.hits)
    assert json.loads(by_id[str(completed.id)].body)["data"]["charge"] == "1.80000"
    assert json.loads(by_id[str(test_event)].body)["type"] == "webhook.test"
    # The relay is at-least-once: the same event published again makes no second delivery.
    connection = await connect_amqp(wh_settings.amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(topology.exchange_name(wh_settings))
        message = build_message(
            event_id=completed.id,
            event_type=str(completed.type),
            payload_json=json.dumps(completed.payload),
            correlation_id=None,
        )
        await exchange.publish(message, routing_key=str(completed.type))
    await asyncio.sleep(1.0)
    assert len(receiver.hits) == 2
    assert len(await deliveries(pool, endpoint_id)) == 2


async def test_two_dispatchers_at_once_send_each_attempt_once(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, spawn
) -> None:
    async def fail_first(request: web.Request, r: Receiver) -> web.StreamResponse:
        seen = sum(1 for h in r.hits if h.headers["webhook-id"] == request.headers["webhook-id"])
        return web.Response(status=500 if seen == 1 else 200)

    receiver = await Receiver(fail_first).start()
    try:
        endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
        events = [await emit(pool, account_id=account) for _ in range(120)]
        overrides = {"webhook_retry_schedule_s": [0.2], "webhook_endpoint_concurrency": 64, "webhook_claim_batch": 16}
        await asyncio.gather(spawn("pair-a", **overrides), spawn("pair-b", **overrides))
        await wait_until(lambda: _all_status(pool, endpoint_id, "succeeded", len(events)), timeout=30, interval=0.2)
        counts = Counter(receiver.ids())
        assert set(counts) == {str(e) for e in events}
        assert set(counts.values()) == {2}  # one failed attempt and one retry per event, never more
        rows = await attempts(pool, endpoint_id)
        assert Counter((r["delivery_id"], r["attempt"]) for r in rows).most_common(1)[0][1] == 1
        assert len(rows) == 240
    finally:
        await receiver.stop()


async def _all_status(pool: asyncpg.Pool, endpoint_id: int, status: str, n: int) -> bool:
    rows = await deliveries(pool, endpoint_id)
    return len(rows) == n and all(r["status"] == status for r in rows)


async def test_a_dispatcher_killed_mid_send_is_retried_and_the_receiver_dedupes(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, spawn
) -> None:
    async def hang_first(_request: web.Request, r: Receiver) -> web.StreamResponse:
        if len(r.hits) == 1:
            await asyncio.sleep(30)
        return web.Response()

    receiver = await Receiver(hang_first).start()
    try:
        endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
        short_lease = {"webhook_lease_s": 2.0, "webhook_timeout_s": 1.5}
        first = await spawn("killed", **short_lease)
        event_id = await emit(pool, account_id=account)
        await wait_until(lambda: receiver.hits, timeout=10)
        first.kill()  # SIGKILL while the request is in flight
        await spawn("successor", **short_lease)
        await wait_until(lambda: _all_status(pool, endpoint_id, "succeeded", 1), timeout=15)
        assert receiver.ids() == [str(event_id), str(event_id)]  # the same webhook-id: one event to the receiver
        [row] = await attempts(pool, endpoint_id)
        assert row["attempt"] == 2  # the killed attempt left no log row, but it was counted
        assert row["status_code"] == 200
    finally:
        await receiver.stop()


async def test_the_documented_receiver_example_verifies_real_deliveries(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, logs_dir: Path, dispatchers
) -> None:
    from tests.support.processes import free_port
    from tests.support.webhooks import RECEIVER_HOST

    port = free_port()
    hook, secret = await register(pool, wh_settings, account_id=account, url=f"http://{RECEIVER_HOST}:{port}/")
    secret_file = logs_dir / f"receiver-secret-{port}"
    # Started before its secret exists, as in the compose stack (the demo seed writes it after): it waits for it.
    example = ManagedProcess(
        "shared.webhooks.receiver_example",
        settings_env(wh_settings),
        logs_dir / "receiver-example.log",
        ["--host", RECEIVER_HOST, "--port", str(port), "--secret-file", str(secret_file), "--wait", "60"],
    ).start()
    try:
        partial = secret_file.with_name(secret_file.name + ".partial")
        partial.write_text(secret + "\n")
        partial.replace(secret_file)
        await dispatchers()
        event_id = await emit(pool, account_id=account, status="Completed")
        await wait_until(lambda: f"verified order.status_changed {event_id}" in example.log_text(), timeout=15)

        async def acknowledged() -> bool:
            return [r["last_status"] for r in await deliveries(pool, hook)] == [204]

        await wait_until(acknowledged)
        # A wrong secret is refused by the example (401), so the delivery is retried, not acknowledged.
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM webhook_endpoints WHERE id = $1", hook)
        other, _ = await register(pool, wh_settings, account_id=account, url=f"http://{RECEIVER_HOST}:{port}/")
        await emit(pool, account_id=account)
        rows = await wait_until(lambda: attempts(pool, other))
        assert rows[0]["status_code"] == 401
    finally:
        example.stop()


async def test_a_crash_between_the_fan_out_commit_and_the_acks_makes_no_duplicates(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver, logs_dir: Path, spawn
) -> None:
    endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
    events = [
        Event(EventType.ORDER_STATUS_CHANGED, {"account_id": account, "order": i, "status": "Completed"})
        for i in range(60)
    ]
    connection = await connect_amqp(wh_settings.amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        exchange = await topology.declare(channel, wh_settings)  # the queue exists before anything consumes
        for event in events:
            message = build_message(
                event_id=event.id,
                event_type=str(event.type),
                payload_json=json.dumps(event.payload),
                correlation_id=None,
            )
            await exchange.publish(message, routing_key=str(event.type))
    # SIGKILLed right after its first batch committed: none of the messages is acked.
    env = settings_env(wh_settings, webhook_secret_key=SECRET_KEY, failpoints="webhooks.after_ingest=kill")
    crashing = ManagedProcess("services.webhooks", env, logs_dir / "crash-after-ingest.log").start()
    await wait_until(lambda: not crashing.alive(), timeout=30)
    assert crashing.proc is not None
    assert crashing.proc.returncode == -9, crashing.log_text()[-3000:]
    stored = await deliveries(pool, endpoint_id)
    assert 1 <= len(stored) <= len(events)  # the batch committed

    await spawn("after-crash")  # gets every message again and fans the stored ones out a second time
    await wait_until(lambda: _all_status(pool, endpoint_id, "succeeded", len(events)), timeout=30, interval=0.2)
    await asyncio.sleep(0.5)
    assert Counter(receiver.ids()) == Counter({str(e.id): 1 for e in events})
    assert len(await attempts(pool, endpoint_id)) == len(events)
