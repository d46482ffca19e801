"""The placer next to a relay: it wakes the relay itself and its commits skip the outbox NOTIFY; batches in
flight never share an account."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.db import placement as sql
from shared.db.pool import connect
from shared.db.types import Conn
from shared.domain.order_types import ServiceTerms
from shared.messaging.relay import NOTIFY_CHANNEL
from shared.ordering.placement import Placer
from shared.settings import Settings
from tests.ordering.conftest import account_state, order_request
from tests.support.factories import make_account


async def test_wake_relay_replaces_the_databases_notify(
    pool: asyncpg.Pool, settings: Settings, terms: ServiceTerms
) -> None:
    account_id = await make_account(pool, balance="100")
    wakes = 0

    def wake() -> None:
        nonlocal wakes
        wakes += 1

    heard: list[str] = []
    listener = await connect(settings)
    await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(args[3]))
    placer = Placer(pool, settings, wake_relay=wake)
    await placer.start()
    try:
        order_id = await placer.place(order_request(terms, account_id=account_id, quantity=5))
        # Any other writer of the outbox still notifies: the NOTIFY is skipped on the placer's sessions only.
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO outbox (id, event_type, payload) VALUES (gen_random_uuid(), 'x', '{}')")
        await asyncio.sleep(0.3)  # notifications arrive asynchronously
    finally:
        await placer.close()
        await listener.close()

    assert order_id > 0
    assert wakes >= 1
    assert heard == [""]  # the other insert's only
    assert await account_state(pool, account_id) == (95, 1, 1, 1)
    # The placer gave its connections back reset: a session from the pool notifies again.
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT current_setting('panelflow.outbox_notify', true)") in (None, "")


async def test_without_a_relay_next_door_the_database_notifies(
    pool: asyncpg.Pool, placer: Placer, settings: Settings, terms: ServiceTerms
) -> None:
    account_id = await make_account(pool, balance="100")
    heard: list[str] = []
    listener = await connect(settings)
    await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(args[3]))
    try:
        await placer.place(order_request(terms, account_id=account_id, quantity=5))
        await asyncio.sleep(0.3)
    finally:
        await listener.close()
    assert heard


async def test_batches_in_flight_never_share_an_account(
    pool: asyncpg.Pool, settings: Settings, terms: ServiceTerms, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = [await make_account(pool, balance="1000") for _ in range(3)]
    in_flight: list[set[int]] = []
    overlaps: list[set[int]] = []
    sizes: list[int] = []
    original = sql.place_batch

    async def watched(conn: Conn, orders: list[sql.NewOrder]) -> list[sql.PlacementRow]:
        mine = {o.account_id for o in orders}
        for other in in_flight:
            if other & mine:
                overlaps.append(other & mine)
        in_flight.append(mine)
        sizes.append(len(orders))
        try:
            await asyncio.sleep(0.02)  # long enough for the queue to fill behind the batch
            return await original(conn, orders)
        finally:
            in_flight.remove(mine)

    monkeypatch.setattr(sql, "place_batch", watched)
    placer = Placer(pool, settings.model_copy(update={"placement_concurrency": 4}))
    await placer.start()
    try:
        ids = await asyncio.gather(
            *(placer.place(order_request(terms, account_id=accounts[i % 3], quantity=1)) for i in range(300))
        )
    finally:
        await placer.close()

    assert len(set(ids)) == 300
    assert overlaps == []
    # Held-back requests ride together: far fewer batches than orders.
    assert len(sizes) < 60
    for account_id in accounts:
        assert await account_state(pool, account_id) == (900, 100, 100, 100)
