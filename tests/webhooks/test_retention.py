"""Retention: old finished deliveries, their attempts and unreferenced events go; pending, recent and
recently skipped ones stay — by the periodic task, `panelflow webhooks purge`, and purgers running at once."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import pytest

from shared.db import webhook_retention as purge_sql
from shared.db import webhooks as webhooks_sql
from shared.settings import Settings
from shared.webhooks import retention
from shared.webhooks.runtime import WebhookService
from tests.support.factories import make_account
from tests.support.webhooks import Receiver, emit, register, wait_until, webhooks_cli

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Case:
    event: uuid.UUID
    endpoint: int | None


async def age(
    pool: asyncpg.Pool,
    event_id: uuid.UUID,
    *,
    event_days: float,
    status: str | None = None,
    changed_days: float | None = None,
    attempts: int = 0,
    endpoint: int | None = None,
) -> None:
    """Backdate an event, and put its delivery (of `endpoint`, or all) in `status`, last changed that long ago,
    with that many logged attempts."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE webhook_events SET created_at = now() - $2::float8 * interval '1 day' WHERE id = $1",
            event_id,
            event_days,
        )
        if status is None:
            return
        rows = await conn.fetch(
            """
            UPDATE webhook_deliveries
            SET status = $3, created_at = now() - $4::float8 * interval '1 day',
                updated_at = now() - $5::float8 * interval '1 day',
                next_attempt_at = CASE WHEN $3 = 'pending' THEN now() + interval '1 hour' END
            WHERE event_id = $1 AND ($2::bigint IS NULL OR endpoint_id = $2)
            RETURNING id, endpoint_id
            """,
            event_id,
            endpoint,
            status,
            event_days,
            changed_days if changed_days is not None else event_days,
        )
        for row in rows:
            for n in range(1, attempts + 1):
                await conn.execute(
                    "INSERT INTO webhook_attempts (delivery_id, endpoint_id, attempt, status_code, latency_ms)"
                    " VALUES ($1, $2, $3, 500, 12)",
                    row["id"],
                    row["endpoint_id"],
                    n,
                )


async def present(pool: asyncpg.Pool, event_id: uuid.UUID) -> tuple[bool, list[str], int]:
    """(event kept, statuses of its deliveries, attempts of them)."""
    async with pool.acquire() as conn:
        kept = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM webhook_events WHERE id = $1)", event_id)
        statuses = [
            r["status"]
            for r in await conn.fetch(
                "SELECT status FROM webhook_deliveries WHERE event_id = $1 ORDER BY endpoint_id", event_id
            )
        ]
        attempts = await conn.fetchval(
            "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id"
            " WHERE d.event_id = $1",
            event_id,
        )
    return kept, statuses, attempts


@pytest.fixture
async def scene(pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver) -> dict[str, uuid.UUID]:
    """Events of every kind, by name; retention 30 days. No dispatcher runs: pending stays pending."""
    first, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/a"))
    second, _ = await register(pool, wh_settings, account_id=account, url=receiver.url("/b"))
    lonely = await make_account(pool)  # no endpoint: its events have no delivery at all
    names: dict[str, uuid.UUID] = {}

    async def event(name: str, account_id: int = account) -> uuid.UUID:
        names[name] = await emit(pool, account_id=account_id)
        return names[name]

    await age(pool, await event("old_succeeded"), event_days=40, status="succeeded", attempts=2)
    await age(pool, await event("old_failed"), event_days=40, status="failed", attempts=10)
    await age(pool, await event("old_skipped"), event_days=40, status="skipped")
    # Skipped 10 days ago (the endpoint was disabled then): still replayable, whatever the event's age.
    await age(pool, await event("recently_skipped"), event_days=40, status="skipped", changed_days=10)
    # Still retrying (or being sent), however old: never purged.
    await age(pool, await event("old_pending"), event_days=40, status="pending", attempts=3)
    # Replayed two days ago and delivered: its log stays for the retention from then.
    await age(pool, await event("replayed_lately"), event_days=40, status="succeeded", changed_days=2, attempts=1)
    await age(pool, await event("recent_succeeded"), event_days=3, status="succeeded", attempts=1)
    await age(pool, await event("old_without_deliveries", lonely), event_days=40)
    await age(pool, await event("recent_without_deliveries", lonely), event_days=3)
    # One endpoint done long ago, the other still retrying: the finished one goes, the event stays.
    mixed = await event("old_mixed")
    await age(pool, mixed, event_days=40, status="succeeded", attempts=1, endpoint=first)
    await age(pool, mixed, event_days=40, status="pending", attempts=4, endpoint=second)
    return names


async def assert_purged_as_documented(pool: asyncpg.Pool, names: dict[str, uuid.UUID]) -> None:
    gone: tuple[bool, list[str], int] = (False, [], 0)
    assert await present(pool, names["old_succeeded"]) == gone
    assert await present(pool, names["old_failed"]) == gone
    assert await present(pool, names["old_skipped"]) == gone
    assert await present(pool, names["old_without_deliveries"]) == gone
    assert await present(pool, names["recently_skipped"]) == (True, ["skipped", "skipped"], 0)
    assert await present(pool, names["old_pending"]) == (True, ["pending", "pending"], 6)
    assert await present(pool, names["replayed_lately"]) == (True, ["succeeded", "succeeded"], 2)
    assert await present(pool, names["recent_succeeded"]) == (True, ["succeeded", "succeeded"], 2)
    assert await present(pool, names["recent_without_deliveries"]) == (True, [], 0)
    assert await present(pool, names["old_mixed"]) == (True, ["pending"], 4)


async def test_old_finished_rows_go_and_pending_recent_and_recently_skipped_stay(
    pool: asyncpg.Pool, wh_settings: Settings, scene: dict[str, uuid.UUID]
) -> None:
    settings = wh_settings.model_copy(update={"webhook_purge_batch": 3})  # several batches
    report = await retention.purge(pool.acquire, settings, older_than=retention.retention(settings, 30))
    await assert_purged_as_documented(pool, scene)
    # At least this scene's (earlier tests may have left old rows of their own).
    assert report.events >= 4
    assert report.deliveries >= 2 * 3 + 1
    assert report.attempts >= 2 * (2 + 10) + 1
    assert report.batches >= 2
    again = await retention.purge(pool.acquire, settings, older_than=retention.retention(settings, 30))
    assert (again.events, again.deliveries, again.attempts) == (0, 0, 0)


async def test_purgers_running_at_once_share_the_work(
    pool: asyncpg.Pool, wh_settings: Settings, scene: dict[str, uuid.UUID]
) -> None:
    settings = wh_settings.model_copy(update={"webhook_purge_batch": 1})
    older_than = retention.retention(settings, 30)
    reports = await asyncio.gather(*(retention.purge(pool.acquire, settings, older_than=older_than) for _ in range(3)))
    await assert_purged_as_documented(pool, scene)
    assert sum(r.deliveries for r in reports) >= 2 * 3 + 1  # each row once, whoever took it


async def test_the_webhooks_process_purges_periodically(
    pool: asyncpg.Pool, wh_settings: Settings, scene: dict[str, uuid.UUID]
) -> None:
    settings = wh_settings.model_copy(update={"webhook_purge_interval_s": 0.2, "webhook_retention_days": 30})
    service = WebhookService(settings, pool)
    await service.retention.start()  # the process starts it with the consumer and the dispatcher
    try:

        async def purged() -> bool:
            return not (await present(pool, scene["old_succeeded"]))[0]

        await wait_until(purged, timeout=10)
    finally:
        await service.retention.stop()
    await assert_purged_as_documented(pool, scene)


async def test_the_periodic_purge_can_be_off_and_refuses_a_too_short_retention(
    pool: asyncpg.Pool, wh_settings: Settings
) -> None:
    off = WebhookService(wh_settings.model_copy(update={"webhook_retention_days": 0}), pool)
    await off.retention.start()
    await off.retention.stop()
    assert off.retention.runs == 0
    short = WebhookService(wh_settings.model_copy(update={"webhook_retention_days": 2}), pool)
    assert await short.retention.run_once() is None  # logged as webhook_purge_refused; nothing deleted
    with pytest.raises(retention.RetentionTooShort, match="at least 5 days"):
        retention.retention(wh_settings, 2)


def test_the_minimum_retention_covers_retries_and_the_automatic_disable() -> None:
    defaults = Settings()
    # Every retry at its longest (the schedule +20 %, or a 6 h Retry-After) spans about 4.7 days; an endpoint
    # is disabled after 5 days without a success.
    assert retention.minimum_retention(defaults) == defaults.webhook_disable_after == 5 * DAY
    longer = defaults.model_copy(update={"webhook_retry_schedule_s": [86400.0] * 6})
    assert retention.minimum_retention(longer) == timedelta(seconds=6 * 86400 * 1.2)
    assert retention.retention(defaults) == 30 * DAY


async def test_cli_purge(pool: asyncpg.Pool, wh_settings: Settings, scene: dict[str, uuid.UUID]) -> None:
    refused = await webhooks_cli(wh_settings, "purge", "--older-than", "2")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "at least 5 days" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert (await present(pool, scene["old_succeeded"]))[0]  # nothing deleted

    done = await webhooks_cli(wh_settings, "purge", "--older-than", "30")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("purged "), done.stdout
    assert done.stdout.rstrip().endswith("older than 30 days")
    await assert_purged_as_documented(pool, scene)

    bad = await webhooks_cli(wh_settings, "purge", "--older-than", "-1")
    assert bad.returncode == 2
    assert "positive number of days" in bad.stderr


async def test_a_replay_racing_the_purge_of_its_event_replays_nothing_and_fails_nothing(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, scene: dict[str, uuid.UUID]
) -> None:
    # The purge has locked and deleted an old event, not committed yet; a replay of it waits, then finds it gone
    # (without the lock in the replay, its insert would fail on the foreign key once the purge commits).
    event = scene["old_succeeded"]
    async with pool.acquire() as conn:
        endpoint = await conn.fetchval("SELECT min(endpoint_id) FROM webhook_deliveries WHERE event_id = $1", event)
    async with pool.acquire() as purger, pool.acquire() as replayer:
        purge = purger.transaction()
        await purge.start()
        cutoff = await purge_sql.cutoff_before(purger, retention.retention(wh_settings, 30).total_seconds())
        batch = await purge_sql.purge_batch(purger, cutoff=cutoff, after=purge_sql.START, limit=1000)
        assert batch.events >= 1
        replay = asyncio.create_task(
            webhooks_sql.replay(replayer, endpoint_id=endpoint, account_id=account, event_id=event, since=None)
        )
        await asyncio.sleep(0.3)
        assert not replay.done()  # waiting for the purge
        await purge.commit()
        assert await asyncio.wait_for(replay, 10) == 0
    assert await present(pool, event) == (False, [], 0)
