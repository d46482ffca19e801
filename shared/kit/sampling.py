"""Gauges read from the database now and then (backlogs, parked orders), in the process that owns them.

A failed sample is logged and skipped: the gauge keeps its last value and readiness reports the outage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from shared.db import observability as sql
from shared.db.types import Conn
from shared.kit.periodic import Periodic
from shared.observability import metrics

Sample = Callable[[Conn], Awaitable[None]]

log = structlog.get_logger(__name__)

SAMPLE_TIMEOUT_S = 5.0


async def sample_outbox(conn: Conn) -> None:
    gauges = await sql.outbox_gauges(conn)
    metrics.OUTBOX_BACKLOG.set(gauges.backlog)
    metrics.OUTBOX_OLDEST_AGE.set(gauges.oldest_s)


async def sample_worker(conn: Conn) -> None:
    gauges = await sql.worker_gauges(conn)
    metrics.PARKED_ORDERS.set(gauges.parked)
    metrics.POLLS_DUE.set(gauges.polls_due)


async def sample_webhooks(conn: Conn) -> None:
    gauges = await sql.webhook_gauges(conn)
    metrics.WEBHOOK_BACKLOG.set(gauges.backlog)
    metrics.WEBHOOK_OLDEST_DUE_AGE.set(gauges.oldest_s)
    metrics.WEBHOOK_ENDPOINTS_DISABLED.set(gauges.disabled)


class Sampler:
    """Runs the samples on one pooled connection at start and every `interval_s` after; `start()` returns at once."""

    def __init__(self, pool: asyncpg.Pool, samples: list[Sample], interval_s: float) -> None:
        self._pool = pool
        self._samples = samples
        self._loop = Periodic("metrics-sampler", self.sample_once, every=lambda: interval_s)

    async def sample_once(self) -> None:
        try:
            async with self._pool.acquire(timeout=SAMPLE_TIMEOUT_S) as conn:
                for sample in self._samples:
                    await sample(conn)
        except Exception as exc:  # database down: keep the last values, try again next round
            log.warning("metrics_sample_failed", error=f"{type(exc).__name__}: {exc}")

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
