"""A hostile receiver (or a broken row) cannot poison the dispatcher: what a receiver answers is stored cleaned,
a result the database still refuses is recorded degraded on its own, an attempt that breaks in our code counts
as a failed attempt on the retry schedule, and no delivery is leased again and again outside it."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp import web

from shared.db import webhooks as webhooks_db
from shared.net.guard import AddressGuard
from shared.settings import Settings
from shared.webhooks.dispatcher import Dispatcher
from shared.webhooks.recording import Outcome
from shared.webhooks.schedule import decide
from shared.webhooks.sender import AttemptResult
from tests.support.webhooks import Receiver, attempts, deliveries, emit, register, wait_until

POISON = b"ok\x00body \xff\xfe end"


async def _status(pool: asyncpg.Pool, endpoint_id: int, status: str) -> bool:
    rows = await deliveries(pool, endpoint_id)
    return bool(rows) and all(r["status"] == status for r in rows)


async def test_a_response_body_with_nul_and_invalid_utf8_is_stored_cleaned(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers: Any
) -> None:
    async def poison(_request: web.Request, r: Receiver) -> web.StreamResponse:
        return web.Response(status=500 if len(r.hits) == 1 else 200, body=POISON, content_type="text/plain")

    hostile, fine = await Receiver(poison).start(), await Receiver().start()
    try:
        bad_id, _ = await register(pool, wh_settings, account_id=account, url=hostile.url())
        good_id, _ = await register(pool, wh_settings, account_id=account, url=fine.url())
        # A lease far longer than the test: a delivery not recorded would only come back after it.
        await dispatchers(webhook_retry_schedule_s=[0.2], webhook_lease_s=600.0)
        await emit(pool, account_id=account)
        await wait_until(lambda: _status(pool, bad_id, "succeeded"), timeout=10)
        await wait_until(lambda: _status(pool, good_id, "succeeded"), timeout=10)
        rows = await attempts(pool, bad_id)
        assert [(r["attempt"], r["status_code"]) for r in rows] == [(1, 500), (2, 200)]
        assert all(r["response_body"] == "ok\ufffdbody \ufffd\ufffd end" for r in rows), rows
        assert len(hostile.hits) == 2
    finally:
        await hostile.stop()
        await fine.stop()


async def test_an_attempt_that_breaks_in_our_code_follows_the_retry_schedule(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver, dispatchers: Any
) -> None:
    endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
    async with pool.acquire() as conn:  # a secret that no longer decrypts: the attempt fails before sending
        await conn.execute("UPDATE webhook_endpoints SET secret_enc = 'gAAAAAbroken' WHERE id = $1", endpoint_id)
    await dispatchers(webhook_retry_schedule_s=[0.2, 0.2], webhook_lease_s=600.0)
    await emit(pool, account_id=account)
    await wait_until(lambda: _status(pool, endpoint_id, "failed"), timeout=10)
    [row] = await deliveries(pool, endpoint_id)
    assert (row["attempts"], row["step"]) == (3, 2)
    assert [r["error"] for r in await attempts(pool, endpoint_id)] == ["internal error: SecretBoxError"] * 3
    assert receiver.hits == []


async def test_a_result_the_database_refuses_is_recorded_on_its_own(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver
) -> None:
    endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
    other_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/other"))
    dispatcher = Dispatcher(wh_settings, pool, AddressGuard(wh_settings.webhooks_allowed_networks))
    try:
        await emit(pool, account_id=account)
        leases: dict[int, Any] = {}

        async def both_claimed() -> bool:
            leases.update({lease.endpoint_id: lease for lease in await dispatcher.claim(10)})
            return set(leases) == {endpoint_id, other_id}

        await wait_until(both_claimed, timeout=5)
        ok = decide(wh_settings, step=0, status_code=200)
        # A latency no INTEGER holds: nothing a receiver controls, but a row the database refuses all the same.
        broken = Outcome(leases[endpoint_id], AttemptResult(200, 2**31, body="fine"), ok)
        fine = Outcome(leases[other_id], AttemptResult(200, 12, body="fine"), ok)
        await asyncio.gather(dispatcher._recorder.submit(broken), dispatcher._recorder.submit(fine))
    finally:
        await dispatcher.stop(grace_s=0.1)
    [row] = await deliveries(pool, endpoint_id)
    assert (row["status"], row["attempts"]) == ("succeeded", 1)
    [logged] = await attempts(pool, endpoint_id)
    assert (logged["status_code"], logged["latency_ms"], logged["response_body"]) == (200, 0, None)
    assert logged["error"] == "the attempt's result could not be stored (DataError)"
    assert [r["status"] for r in await deliveries(pool, other_id)] == ["succeeded"]
    assert [r["latency_ms"] for r in await attempts(pool, other_id)] == [12]


async def test_a_delivery_leased_again_and_again_is_capped_and_a_replay_starts_a_new_run(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver, dispatchers: Any
) -> None:
    endpoint_id, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
    event_id = await emit(pool, account_id=account)
    # A dispatcher that dies in the middle of each attempt: the delivery is leased, nothing is ever recorded.
    dying = Dispatcher(
        wh_settings.model_copy(update={"webhook_lease_s": 0.05}),
        pool,
        AddressGuard(wh_settings.webhooks_allowed_networks),
    )
    try:
        for _ in range(3):

            async def leased() -> bool:
                return bool(await dying.claim(10))

            await wait_until(leased, timeout=5)
    finally:
        await dying.stop(grace_s=0.1)

    await dispatchers(webhook_max_attempts=3)
    await wait_until(lambda: _status(pool, endpoint_id, "failed"), timeout=10)
    assert receiver.hits == []  # over the cap: not sent again
    [row] = await deliveries(pool, endpoint_id)
    assert row["attempts"] == 4
    assert [r["error"] for r in await attempts(pool, endpoint_id)] == ["not sent: over webhook_max_attempts (3)"]

    async with pool.acquire() as conn:
        assert await webhooks_db.replay(
            conn, endpoint_id=endpoint_id, account_id=account, event_id=event_id, since=None
        )
    await wait_until(lambda: _status(pool, endpoint_id, "succeeded"), timeout=10)
    assert len(receiver.hits) == 1
