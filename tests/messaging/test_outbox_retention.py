"""Outbox retention: rows published longer ago than the retention go, batch by batch; unpublished rows stay
whatever their age, and so do recent ones — by the relay's periodic purge, purgers at once, and the CLI."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg

from shared.messaging import outbox_retention
from shared.messaging.relay import OutboxRelay
from shared.settings import Settings
from tests.cli.conftest import run_cli
from tests.support.messaging import eventually

HOUR = timedelta(hours=1)


async def _row(pool: asyncpg.Pool, *, created_hours_ago: float, published_hours_ago: float | None) -> uuid.UUID:
    event_id = uuid.uuid4()
    async with pool.acquire() as conn:
        await conn.execute(
            """
            INSERT INTO outbox (id, event_type, payload, created_at, published_at)
            VALUES ($1, 'order.status_changed', $2, now() - make_interval(secs => $3),
                    now() - make_interval(secs => $4))
            """,
            event_id,
            {"account_id": 1},
            created_hours_ago * 3600,
            None if published_hours_ago is None else published_hours_ago * 3600,
        )
    return event_id


async def _scene(pool: asyncpg.Pool) -> dict[str, list[uuid.UUID]]:
    """Old published rows (to go), and rows that stay: recent published, and unpublished however old."""
    return {
        "old_published": [await _row(pool, created_hours_ago=200, published_hours_ago=199) for _ in range(7)],
        "recent_published": [await _row(pool, created_hours_ago=2, published_hours_ago=1) for _ in range(2)],
        # Published lately though written long ago (the broker was away): its retention runs from the publish.
        "late_published": [await _row(pool, created_hours_ago=400, published_hours_ago=3)],
        "never_published": [await _row(pool, created_hours_ago=400, published_hours_ago=None) for _ in range(2)],
    }


async def _left(pool: asyncpg.Pool) -> set[uuid.UUID]:
    async with pool.acquire() as conn:
        return {r["id"] for r in await conn.fetch("SELECT id FROM outbox")}


def _staying(scene: dict[str, list[uuid.UUID]]) -> set[uuid.UUID]:
    return {i for name, ids in scene.items() if name != "old_published" for i in ids}


async def test_only_rows_published_before_the_retention_go(msettings: Settings, messaging_pool: asyncpg.Pool) -> None:
    scene = await _scene(messaging_pool)
    settings = msettings.model_copy(update={"outbox_purge_batch": 3})  # several batches
    deleted = await outbox_retention.purge(messaging_pool.acquire, settings, older_than=168 * HOUR)
    assert deleted == 7
    assert await _left(messaging_pool) == _staying(scene)
    assert await outbox_retention.purge(messaging_pool.acquire, settings, older_than=168 * HOUR) == 0


async def test_purgers_running_at_once_share_the_work(msettings: Settings, messaging_pool: asyncpg.Pool) -> None:
    scene = await _scene(messaging_pool)
    settings = msettings.model_copy(update={"outbox_purge_batch": 1})
    counts = await asyncio.gather(
        *(outbox_retention.purge(messaging_pool.acquire, settings, older_than=168 * HOUR) for _ in range(3))
    )
    assert sum(counts) == 7  # each row once, whoever took it
    assert await _left(messaging_pool) == _staying(scene)


async def test_the_relay_purges_periodically_and_not_when_off(
    msettings: Settings, messaging_pool: asyncpg.Pool
) -> None:
    off = OutboxRelay(msettings.model_copy(update={"outbox_retention_hours": 0, "outbox_purge_interval_s": 0.2}),
                      messaging_pool)  # fmt: skip
    scene = await _scene(messaging_pool)
    await off.start()
    await asyncio.sleep(0.6)
    await off.stop()
    assert off.retention.runs == 0
    assert await _left(messaging_pool) == {i for ids in scene.values() for i in ids}

    relay = OutboxRelay(msettings.model_copy(update={"outbox_purge_interval_s": 0.2}), messaging_pool)
    await relay.start()
    try:

        async def purged() -> bool:
            return relay.retention.runs >= 2 and not set(scene["old_published"]) & await _left(messaging_pool)

        await eventually(purged, timeout=10)
    finally:
        await relay.stop()
    # The relay published the never-published rows meanwhile; nothing else went.
    assert await _left(messaging_pool) == _staying(scene)


async def test_cli_purge(msettings: Settings, messaging_pool: asyncpg.Pool) -> None:
    scene = await _scene(messaging_pool)
    result = await asyncio.to_thread(run_cli, msettings, "outbox", "purge", "--older-than", "2.5")
    assert result.code == 0, result
    # 2.5 hours: the recent rows (published 1 hour ago) and the late one (3 hours) split.
    assert result.out.strip() == "purged 8 outbox rows published more than 2.5 hours ago"
    assert await _left(messaging_pool) == set(scene["recent_published"]) | set(scene["never_published"])
    bad = await asyncio.to_thread(run_cli, msettings, "outbox", "purge", "--older-than", "soon")
    bad.assert_user_error(code=2, says="expected a number of hours")
