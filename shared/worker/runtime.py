"""One worker process: the `worker.orders` consumer, the status pollers and the sweeper, started and stopped
together. Several workers run side by side: messages are competing consumers, claims use SKIP LOCKED.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from shared.db.pool import DATABASE_ERRORS
from shared.failpoints import Failpoints
from shared.kit.group_commit import GroupCommit, no_results
from shared.kit.supervisor import Beat, stall_after, supervise
from shared.logging import context_without_message
from shared.messaging import topology
from shared.messaging.consumer import Consumer
from shared.settings import Settings
from shared.worker.cancels import Cancels
from shared.worker.handlers import WorkerHandlers
from shared.worker.polling import Poller
from shared.worker.refills import Refills
from shared.worker.submission import Submitter
from shared.worker.sweeper import Sweeper
from shared.worker.upstreams import Upstreams

log = structlog.get_logger(__name__)


class Worker:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, failpoints: Failpoints | None = None) -> None:
        self.settings = settings
        self.upstreams = Upstreams(pool, settings)
        self.submitter = Submitter(pool, self.upstreams, settings, failpoints or Failpoints(settings.failpoints))
        self.poller = Poller(pool, self.upstreams, settings)
        self.refills = Refills(pool, self.upstreams, settings)
        self.cancels = Cancels(pool, self.upstreams, settings)
        self.sweeper = Sweeper(pool, settings, self.submitter, self.refills, self.cancels)
        # Concurrent `order.placed` handlers' orders are claimed and submitted together: each handler waits for
        # its batch, so its message is still acked only after the commit that settled its order, while the
        # database sees one claim and one result transaction per batch instead of two per order.
        self.submissions: GroupCommit[int, None] = GroupCommit(
            no_results(self.submitter.submit_named),
            max_size=settings.worker_submit_batch_max,
            concurrency=None,
            linger_s=settings.worker_submit_linger_s,
            context=context_without_message,
        )
        handlers = WorkerHandlers(self.submissions, self.refills, self.cancels)
        self.consumer = Consumer(settings, topology.WORKER_QUEUE, handlers.handle)
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.consumer.start()
        s = self.settings
        claim = s.worker_poll_claim
        # A round waits on upstream calls (up to their timeout, a few at a time): give it that long at least.
        rounds = max(s.worker_poll_idle_s, 2 * s.upstream_timeout_s)
        self._stopping.clear()
        self._loops = [
            supervise(
                "poll-orders",
                functools.partial(self._loop, "poll_orders", self.poller.poll_once, claim),
                stopping=self._stopping,
                stall_after_s=stall_after(s.loop_stall_s, rounds),
            ),
            supervise(
                "poll-refills",
                functools.partial(self._loop, "poll_refills", self.refills.poll_once, claim),
                stopping=self._stopping,
                stall_after_s=stall_after(s.loop_stall_s, rounds),
            ),
            supervise(
                "sweeper",
                self._sweep_loop,
                stopping=self._stopping,
                stall_after_s=stall_after(s.loop_stall_s, max(s.worker_sweep_s, rounds)),
            ),
        ]
        log.info("worker_started")

    async def stop(self) -> None:
        """Stop taking work; let what is in flight finish within `worker_drain_s`; release everything."""
        drain = self.settings.worker_drain_s
        self._stopping.set()
        await self.consumer.stop(timeout=drain)
        await self.submissions.close()
        _, pending = await asyncio.wait(self._loops, timeout=drain) if self._loops else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.upstreams.close()
        log.info("worker_stopped", status_calls=self.poller.calls, status_ids=self.poller.ids)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _loop(self, name: str, round_: Callable[[], Awaitable[int]], full: int, beat: Beat) -> None:
        # A full round means more is due right now: go again at once; otherwise wait a little.
        while not self._stopping.is_set():
            try:
                done = await round_()
            except DATABASE_ERRORS as exc:  # the database is away: try again shortly
                log.warning("worker_loop_failed", loop=name, error=f"{type(exc).__name__}: {exc}")
                done = 0
                await self._pause(1.0)
            beat()
            if done < full:
                await self._pause(self.settings.worker_poll_idle_s)

    async def _sweep_loop(self, beat: Beat) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweeper.sweep(progress=beat)
            except DATABASE_ERRORS as exc:
                log.warning("worker_loop_failed", loop="sweeper", error=f"{type(exc).__name__}: {exc}")
            beat()
            await self._pause(self.settings.worker_sweep_s)
