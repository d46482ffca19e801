"""Outbox retention: published rows are deleted once they were published more than `outbox_retention_hours`
ago; unpublished rows never, whatever their age. Without it the outbox keeps a row for every event ever sent.

Every relay runs it (`OutboxRelay` starts and stops it): soon after start, then every `outbox_purge_interval_s`
± 10 %, in transactions of at most `outbox_purge_batch` rows until a batch comes back short. Rows another purger
holds are skipped, so relays in several processes share the work. `panelflow outbox purge` does it on demand.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import sentry_sdk
import structlog

from shared.db import outbox
from shared.db.types import Acquire
from shared.kit.periodic import Periodic
from shared.settings import Settings

log = structlog.get_logger(__name__)


async def purge(
    acquire: Acquire, settings: Settings, *, older_than: timedelta, stop: asyncio.Event | None = None
) -> int:
    """Delete the rows published longer than `older_than` ago, batch by batch; returns how many. Returns early
    once `stop` is set."""
    limit = max(1, settings.outbox_purge_batch)
    total = 0
    while stop is None or not stop.is_set():
        async with acquire() as conn:
            deleted = await outbox.purge_published(conn, older_than_s=older_than.total_seconds(), limit=limit)
        total += deleted
        if deleted < limit:
            break
        await asyncio.sleep(0)  # one batch at a time: let the process's other work in between
    return total


class OutboxRetention:
    """The periodic purge of one relay."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.pool = pool
        self.runs = 0
        self._loop = Periodic.about_every("outbox-retention", self.run_once, settings.outbox_purge_interval_s)

    async def start(self) -> None:
        if self.settings.outbox_retention_hours <= 0:
            log.info("outbox_purge_off")
            return
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def run_once(self) -> int | None:
        older_than = timedelta(hours=self.settings.outbox_retention_hours)
        try:
            deleted = await purge(self.pool.acquire, self.settings, older_than=older_than, stop=self._loop.stopping)
        except Exception as exc:  # the database is away: try again next time
            log.exception("outbox_purge_failed")
            sentry_sdk.capture_exception(exc)
            return None
        finally:
            self.runs += 1
        if deleted:
            log.info("outbox_purge_done", rows=deleted, older_than_hours=self.settings.outbox_retention_hours)
        return deleted
