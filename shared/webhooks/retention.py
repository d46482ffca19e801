"""Webhook retention: the delivery log and the events kept for replay do not grow for ever.

What goes, `webhook_retention_days` (30) after it last changed:
- succeeded and failed deliveries, with their attempts: the log `webhook.deliveries` shows;
- skipped deliveries (events that arrived while the endpoint was disabled), with their attempts: they are what
  an operator replays after enabling the endpoint again, so they stay replayable for the retention period
  from when they were skipped (about 25 days after an automatic disable, with the defaults), not for ever:
  an endpoint nobody re-enables would otherwise keep every event of its account;
- then every event older than that no delivery refers to any more (replay `since` reaches back this far).
What stays, whatever its age: pending deliveries (a retry is still scheduled, or one is being sent) and their
events. The retention may not be shorter than the longest a delivery can keep retrying or an endpoint can fail
before it is disabled (`minimum_retention`), so what a disabled endpoint missed is there when it is enabled.

Every webhooks process purges now and then (`RetentionTask`); `panelflow webhooks purge` does it on demand.
Batches of at most `webhook_purge_batch` events, one short transaction each, rows in use skipped (see
shared/db/webhook_retention.py): several processes purging at once share the work.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import sentry_sdk
import structlog

from shared.db import webhook_retention as sql
from shared.db.types import Acquire
from shared.kit.periodic import Periodic
from shared.settings import Settings

log = structlog.get_logger(__name__)


class RetentionTooShort(ValueError):
    pass


@dataclass
class PurgeReport:
    events: int = 0
    deliveries: int = 0
    attempts: int = 0
    batches: int = 0


def minimum_retention(settings: Settings) -> timedelta:
    """The longest a delivery can stay pending (every retry at its longest, or at the longest Retry-After we
    honour), or an endpoint can fail before it is disabled, whichever is longer."""
    stretch = 1 + settings.webhook_retry_jitter
    retrying = sum(max(s * stretch, settings.webhook_retry_after_max_s) for s in settings.webhook_retry_schedule_s)
    return max(timedelta(seconds=retrying), settings.webhook_disable_after)


def retention(settings: Settings, days: float | None = None) -> timedelta:
    """`days` (default: the setting) as a period; RetentionTooShort below `minimum_retention`."""
    period = timedelta(days=settings.webhook_retention_days if days is None else days)
    floor = minimum_retention(settings)
    if period < floor:
        least = math.ceil(floor / timedelta(days=1))
        raise RetentionTooShort(
            f"webhook retention of {period / timedelta(days=1):g} days is shorter than retries and the automatic "
            f"disable can last: at least {least} days"
        )
    return period


# Where each batch gets its connection: a pool's `acquire` (a connection per batch), or one connection.
async def purge(
    acquire: Acquire, settings: Settings, *, older_than: timedelta, stop: asyncio.Event | None = None
) -> PurgeReport:
    """Purge what is finished and older than `older_than` (validate it with `retention`), batch by batch;
    returns early once `stop` is set."""
    report = PurgeReport()
    limit = max(1, settings.webhook_purge_batch)
    position = sql.START
    async with acquire() as conn:
        cutoff = await sql.cutoff_before(conn, older_than.total_seconds())
    while stop is None or not stop.is_set():
        async with acquire() as conn:
            batch = await sql.purge_batch(conn, cutoff=cutoff, after=position, limit=limit)
        report.batches += 1
        report.events += batch.events
        report.deliveries += batch.deliveries
        report.attempts += batch.attempts
        if batch.looked_at < limit:
            break
        position = batch.position
        await asyncio.sleep(0)  # one batch at a time: let the process's other work in between
    return report


class RetentionTask:
    """The periodic purge of one webhooks process: soon after start (restarts may come more often than the
    interval), then every `webhook_purge_interval_s` ± 10 %."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.pool = pool
        self.runs = 0
        self._loop = Periodic.about_every("webhook-retention", self.run_once, settings.webhook_purge_interval_s)

    async def start(self) -> None:
        if self.settings.webhook_retention_days <= 0:
            log.info("webhook_purge_off")
            return
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def run_once(self) -> PurgeReport | None:
        try:
            older_than = retention(self.settings)
            report = await purge(self.pool.acquire, self.settings, older_than=older_than, stop=self._loop.stopping)
        except RetentionTooShort as exc:
            log.error("webhook_purge_refused", error=str(exc))
            return None
        except Exception as exc:  # the database is away: try again next time
            log.exception("webhook_purge_failed")
            sentry_sdk.capture_exception(exc)
            return None
        finally:
            self.runs += 1
        if report.events or report.deliveries:
            log.info("webhook_purge_done", events=report.events, deliveries=report.deliveries,
                     attempts=report.attempts, batches=report.batches)  # fmt: skip
        return report
