"""The batched paths: fan-out of many events in one statement, a claim in one call, a round of results in one
write (the group commit that forms the batches: tests/kit/test_group_commit.py)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter

import asyncpg
from aiohttp import web

from shared.db import webhook_dispatch as dispatch_db
from shared.db import webhooks as db
from shared.settings import Settings
from shared.webhooks.ingest import incoming_event, ingest_batch
from shared.webhooks.recording import Outcome, record_round
from shared.webhooks.schedule import decide
from shared.webhooks.sender import AttemptResult
from tests.support.webhooks import Receiver, attempts, deliveries, register, wait_until


def _events(account_id: int, n: int) -> list[dispatch_db.IncomingEvent]:
    return [
        incoming_event(
            event_id=uuid.uuid4(),
            event_type="order.status_changed",
            payload={"account_id": account_id, "order": i, "status": "In progress"},
        )
        for i in range(n)
    ]


async def test_a_batch_of_redelivered_events_makes_no_duplicate_deliveries(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver
) -> None:
    first, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/a"))
    second, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/b"))
    events = _events(account, 40)
    async with pool.acquire() as conn:
        assert await ingest_batch(conn, events[:25]) == 50

    async def again(batch: list[dispatch_db.IncomingEvent]) -> int:
        async with pool.acquire() as conn:
            return await ingest_batch(conn, batch)

    # Redelivered in other batches at once: overlapping, in other orders, an event twice in one batch.
    rng = random.Random(4)
    batches = [rng.sample(events, len(events)) + events[:3] for _ in range(6)]
    created = await asyncio.gather(*(again(b) for b in batches))
    assert sum(created) == 2 * 15  # only the 15 events never stored before, once each
    for endpoint_id in (first, second):
        rows = await deliveries(pool, endpoint_id)
        assert Counter(r["event_id"] for r in rows) == Counter({e.id: 1 for e in events})
        assert {r["status"] for r in rows} == {"pending"}


async def test_fan_out_of_a_batch_follows_each_events_type_and_target(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver
) -> None:
    from tests.support.factories import make_account

    everything, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/all"))
    completed, _ = await register(
        pool, wh_settings, account_id=account, url=receiver.url("/done"), events="order.completed"
    )
    other_account = await make_account(pool)
    elsewhere, _ = await register(pool, wh_settings, account_id=other_account, url=receiver.url("/other"))
    test_event = incoming_event(
        event_id=uuid.uuid4(), event_type="webhook.test", payload={"account_id": account, "webhook": completed}
    )
    done = incoming_event(
        event_id=uuid.uuid4(), event_type="order.completed", payload={"account_id": account, "order": 1}
    )
    changed = _events(account, 1)[0]
    foreign = _events(other_account, 1)[0]
    try:
        async with pool.acquire() as conn:
            assert await ingest_batch(conn, [test_event, done, changed, foreign]) == 5
        assert {r["event_id"] for r in await deliveries(pool, everything)} == {done.id, changed.id}
        assert {r["event_id"] for r in await deliveries(pool, completed)} == {test_event.id, done.id}
        assert {r["event_id"] for r in await deliveries(pool, elsewhere)} == {foreign.id}
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM webhook_endpoints WHERE account_id = $1", other_account)


async def test_fan_out_waits_for_an_endpoint_being_disabled_and_stores_skipped(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver
) -> None:
    endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
    event = _events(account, 1)[0]
    async with pool.acquire() as disabling, disabling.transaction():
        assert await db.disable_endpoint(disabling, endpoint_id, "operator")
        fan_out = asyncio.create_task(_ingest(pool, [event]))
        await asyncio.sleep(0.3)
        assert not fan_out.done()  # it waits for the disabling transaction
    assert await fan_out == 1
    [row] = await deliveries(pool, endpoint_id)
    assert row["status"] == "skipped"
    assert row["next_attempt_at"] is None


async def _ingest(pool: asyncpg.Pool, events: list[dispatch_db.IncomingEvent]) -> int:
    async with pool.acquire() as conn:
        return await ingest_batch(conn, events)


async def test_a_claim_is_not_held_up_by_a_fan_out_in_progress(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver
) -> None:
    endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
    await _ingest(pool, _events(account, 3))
    async with pool.acquire() as fanning, fanning.transaction():
        await ingest_batch(fanning, _events(account, 2))  # its endpoint locks are held until the commit
        async with pool.acquire() as conn:
            leases = await asyncio.wait_for(
                dispatch_db.claim(conn, limit=10, concurrency=10, rate_per_s=0.0, burst=1, lease_s=30.0), 2.0
            )
    assert len(leases) == 3
    assert {lease.endpoint_id for lease in leases} == {endpoint_id}


async def test_a_round_mixing_successes_failures_and_410_records_each(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver
) -> None:
    ok, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/ok"))
    flaky, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/flaky"))
    gone, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/gone"))
    recovering, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/recovering"))
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE webhook_endpoints SET failing_since = now() - interval '1 hour' WHERE id = ANY ($1::bigint[])",
            [recovering, flaky],
        )
    await _ingest(pool, _events(account, 2))
    async with pool.acquire() as conn:
        leases = await dispatch_db.claim(conn, limit=100, concurrency=10, rate_per_s=0.0, burst=1, lease_s=30.0)
    assert len(leases) == 8
    answers = {ok: (200, None), flaky: (500, "HTTP 500"), gone: (410, "HTTP 410"), recovering: (204, None)}
    outcomes = []
    for lease in leases:
        status, _ = answers[lease.endpoint_id]
        result = AttemptResult(status, latency_ms=3, body=f"answer {status}")
        outcomes.append(Outcome(lease, result, decide(wh_settings, step=lease.step, status_code=status)))
    async with pool.acquire() as conn:
        await record_round(conn, wh_settings, outcomes)

    expected = {ok: "succeeded", flaky: "pending", gone: "failed", recovering: "succeeded"}
    for endpoint_id, state in expected.items():
        rows = await deliveries(pool, endpoint_id)
        assert [r["status"] for r in rows] == [state, state], endpoint_id
        assert all(r["lease_token"] is None and r["attempts"] == 1 for r in rows)
        code, error = answers[endpoint_id]
        logged = await attempts(pool, endpoint_id)
        assert [(a["attempt"], a["status_code"], a["error"]) for a in logged] == [(1, code, error)] * 2
        assert logged[0]["response_body"] == f"answer {code}"
    for row in await deliveries(pool, flaky):  # the schedule's first delay (0.3 s in these settings)
        assert row["step"] == 1
        assert 0.2 < (row["next_attempt_at"] - row["updated_at"]).total_seconds() < 0.4
    async with pool.acquire() as conn:
        endpoints = {e.id: e for e in await db.list_endpoints(conn, account)}
    assert endpoints[ok].enabled
    assert endpoints[ok].failing_since is None
    assert endpoints[recovering].failing_since is None  # the streak ended
    assert endpoints[flaky].enabled
    assert endpoints[flaky].failing_since is not None  # the streak goes on
    assert not endpoints[gone].enabled
    assert endpoints[gone].disabled_reason == "the endpoint answered 410 Gone"


async def test_a_round_with_a_lost_lease_records_the_others(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver
) -> None:
    endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
    await _ingest(pool, _events(account, 3))
    async with pool.acquire() as conn:
        leases = await dispatch_db.claim(conn, limit=10, concurrency=10, rate_per_s=0.0, burst=1, lease_s=30.0)
        # One lease ran out and another dispatcher took the delivery (a new token).
        await conn.execute(
            "UPDATE webhook_deliveries SET lease_token = gen_random_uuid() WHERE id = $1", leases[0].delivery_id
        )
        outcomes = [
            Outcome(lease, AttemptResult(200, latency_ms=1), decide(wh_settings, step=0, status_code=200))
            for lease in leases
        ]
        await record_round(conn, wh_settings, outcomes)
    statuses = {r["id"]: r["status"] for r in await deliveries(pool, endpoint_id)}
    assert statuses[leases[0].delivery_id] == "pending"  # left to the dispatcher that holds it now
    assert [statuses[lease.delivery_id] for lease in leases[1:]] == ["succeeded", "succeeded"]
    assert len(await attempts(pool, endpoint_id)) == 3  # every attempt is logged


async def test_a_busy_dispatcher_records_every_attempt_once(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers
) -> None:
    async def mixed(request: web.Request, r: Receiver) -> web.StreamResponse:
        seen = r.ids(request.path).count(request.headers["webhook-id"])
        if request.path == "/flaky" and seen == 1:
            return web.Response(status=503)
        return web.Response(status=200)

    receiver = await Receiver(mixed).start()
    try:
        steady, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/steady"))
        flaky, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/flaky"))
        events = _events(account, 150)
        await _ingest(pool, events)
        await dispatchers(webhook_retry_schedule_s=[0.1], webhook_endpoint_concurrency=32)

        async def finished() -> bool:
            rows = await deliveries(pool, steady) + await deliveries(pool, flaky)
            return all(r["status"] == "succeeded" for r in rows)

        await wait_until(finished, timeout=30, interval=0.1)
        assert Counter(receiver.ids("/steady")) == Counter({str(e.id): 1 for e in events})
        assert Counter(receiver.ids("/flaky")) == Counter({str(e.id): 2 for e in events})
        assert [a["status_code"] for a in await attempts(pool, steady)] == [200] * 150
        logged = await attempts(pool, flaky)
        assert Counter((a["delivery_id"], a["attempt"], a["status_code"]) for a in logged).most_common(1)[0][1] == 1
        assert Counter(a["status_code"] for a in logged) == Counter({503: 150, 200: 150})
    finally:
        await receiver.stop()
