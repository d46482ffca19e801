"""The worker's periodic sweeps: what no message will bring.

- 'submitting' rows older than the timeout (their worker stopped mid-call): back to pending when the request
  provably never started, or when the provider honours request_id (resent with the same id); else parked;
- pending orders whose retry is due, or whose `order.placed` never came → submitted;
- refills likewise (a dead worker's 'submitting' refill goes back to pending: forwarding twice is harmless);
- cancel requests of orders bought after the request came → forwarded.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import structlog

from shared.db import refills as refills_sql
from shared.db.orders import submission as submissions_sql
from shared.db.orders.submission import STALE_REASONS, StaleOutcome
from shared.observability import metrics
from shared.settings import Settings
from shared.worker.cancels import Cancels
from shared.worker.refills import Refills
from shared.worker.submission import Submitter

log = structlog.get_logger(__name__)
_BATCH = 100


class Sweeper:
    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, submitter: Submitter, refills: Refills, cancels: Cancels
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._submitter = submitter
        self._refills = refills
        self._cancels = cancels

    async def sweep(self, progress: Callable[[], None] = lambda: None) -> dict[str, int]:
        """One sweep; `progress` is called after each batch (a long sweep under load is not a stalled one)."""
        done = {
            "parked": 0, "requeued": 0, "submitted": 0, "refills_released": 0, "refills_forwarded": 0, "cancels": 0
        }  # fmt: skip
        timeout = self._settings.worker_submitting_timeout_s
        async with self._pool.acquire() as conn:
            while stale := await submissions_sql.settle_stale_submissions(conn, older_than_s=timeout, limit=_BATCH):
                for order in stale:
                    reason = STALE_REASONS[order.outcome]
                    if order.outcome is StaleOutcome.PARKED:
                        done["parked"] += 1
                        metrics.SUBMISSIONS.labels(outcome="parked").inc()
                        log.error("order_parked", order_id=order.id, attempt=order.attempt, reason=reason)
                    else:
                        done["requeued"] += 1
                        metrics.SUBMISSIONS.labels(outcome="requeued").inc()
                        log.warning("order_requeued", order_id=order.id, attempt=order.attempt, reason=reason)
                progress()
            released = await refills_sql.release_stale(conn, older_than_s=timeout)
            done["refills_released"] = len(released)
        while (n := await self._submitter.submit_due(limit=_BATCH)) > 0:
            progress()
            done["submitted"] += n
            if n < _BATCH:
                break
        while (n := await self._refills.forward_due(limit=_BATCH)) > 0:
            progress()
            done["refills_forwarded"] += n
            if n < _BATCH:
                break
        done["cancels"] = await self._cancels.forward_due(limit=_BATCH)
        if any(done.values()):
            log.info("sweep_done", **done)
        return done
