"""Status polling: due in-flight orders claimed with SKIP LOCKED (several workers share them), asked about
per provider in `status` calls of up to 100 ids, and their changes applied with refunds and events.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import asyncpg
import structlog

from shared.db.orders import progress as sql
from shared.db.orders.locks import lock_orders
from shared.db.types import Conn
from shared.domain.lifecycle import Observation, PollSchedule, observe
from shared.domain.statuses import TERMINAL
from shared.observability import metrics
from shared.ordering.settlement import Settlement
from shared.settings import Settings
from shared.upstream.results import IdError, OrderReport, UpstreamError
from shared.worker.submission import poll_schedule
from shared.worker.tx import in_transaction
from shared.worker.upstreams import UnknownProvider, Upstreams

log = structlog.get_logger(__name__)


class Poller:
    def __init__(self, pool: asyncpg.Pool, upstreams: Upstreams, settings: Settings) -> None:
        self._pool = pool
        self._upstreams = upstreams
        self._settings = settings
        self._schedule: PollSchedule = poll_schedule(settings)
        self._slots = asyncio.Semaphore(max(1, settings.worker_poll_concurrency))
        self.calls = 0  # status calls made, and the ids they carried (for the benchmark's ids-per-call figure)
        self.ids = 0

    async def poll_once(self) -> int:
        """One round: claim what is due, ask the upstreams, record the answers. Returns the orders claimed."""
        async with self._pool.acquire() as conn:
            claims = await sql.claim_due_polls(
                conn, limit=self._settings.worker_poll_claim, lease_s=self._settings.worker_poll_lease_s
            )
        per_provider: dict[int, list[sql.PollClaim]] = defaultdict(list)
        for claim in claims:
            per_provider[claim.provider_id].append(claim)
        size = self._settings.batch_ids_max
        batches = [
            (provider_id, group[i : i + size])
            for provider_id, group in per_provider.items()
            for i in range(0, len(group), size)
        ]
        await asyncio.gather(*(self._poll_batch(provider_id, batch) for provider_id, batch in batches))
        return len(claims)

    async def _poll_batch(self, provider_id: int, batch: list[sql.PollClaim]) -> None:
        async with self._slots:
            try:
                client = await self._upstreams.client(provider_id)
                self.calls += 1
                self.ids += len(batch)
                metrics.STATUS_CALL_IDS.observe(len(batch))
                reports = await client.status([c.provider_order_id for c in batch])
            except (UpstreamError, UnknownProvider) as exc:
                # The claim's lease brings these orders back after `worker_poll_lease_s`: that is the retry.
                log.warning("status_poll_failed", provider_id=provider_id, orders=len(batch), reason=str(exc))
                return
        by_order = {c.id: reports.get(c.provider_order_id, IdError("Missing from reply")) for c in batch}
        try:
            await self.apply(by_order)
        except Exception:
            log.exception("status_apply_failed", provider_id=provider_id, orders=len(batch))

    async def apply(self, reports: dict[int, OrderReport | IdError]) -> None:
        """Record upstream answers for these orders (by our order id) in one transaction."""

        async def work(conn: Conn) -> None:
            await self._apply(conn, reports)

        await in_transaction(self._pool, work)

    async def _apply(self, conn: Conn, reports: dict[int, OrderReport | IdError]) -> None:
        settlement = Settlement()
        progress: list[sql.Progress] = []
        for locked in await lock_orders(conn, list(reports)):
            view, report = locked.view, reports[locked.view.id]
            next_s = self._schedule.delay(locked.age_s)
            if isinstance(report, IdError):
                log.warning(
                    "status_id_error", order_id=view.id, correlation_id=locked.correlation_id, reason=report.message
                )
                progress.append(
                    sql.Progress(view.id, view.state, view.start_count, view.remains, next_s, report.message)
                )
                continue
            outcome = observe(view, Observation(report.status, report.start_count, report.remains))
            if outcome.held is not None and view.state in TERMINAL:
                continue  # another worker recorded the end already; nothing to do
            if outcome.held is not None:
                log.warning(
                    "status_held",
                    order_id=view.id,
                    correlation_id=locked.correlation_id,
                    status=report.status,
                    reason=outcome.held,
                )
            terminal = outcome.state in TERMINAL
            progress.append(
                sql.Progress(
                    view.id,
                    outcome.state,
                    outcome.start_count,
                    outcome.remains,
                    None if terminal else next_s,
                    outcome.held,
                )
            )
            settlement.order_moved(
                view,
                state=outcome.state,
                start_count=outcome.start_count,
                remains=outcome.remains,
                memo=f"upstream reported {report.status}, remains {outcome.remains}",
                correlation_id=locked.correlation_id,
            )
            if outcome.state != view.state:
                log.info(
                    "order_status_changed",
                    order_id=view.id,
                    correlation_id=locked.correlation_id,
                    old=str(view.state),
                    new=str(outcome.state),
                )
        await sql.record_progress(conn, progress)
        metrics.REFUNDS.inc(await settlement.write(conn))
