"""The delivery loop: lease due deliveries from Postgres, send them, record each attempt and its verdict.

Several dispatchers may run at once. A claim locks the endpoints it serves (`FOR NO KEY UPDATE SKIP LOCKED`),
so per-endpoint concurrency and rate limits hold across all of them; each leased delivery carries a token
and a lease deadline in `next_attempt_at`: a dispatcher killed mid-send loses the lease when it runs out and
another one retries (same `webhook-id`, so receivers dedupe).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from datetime import datetime, timedelta

import aiohttp
import asyncpg
import structlog

from shared.db import webhooks as db
from shared.db.types import Conn
from shared.observability import metrics
from shared.settings import Settings
from shared.webhooks.schedule import Decision, Verdict, decide
from shared.webhooks.secretbox import SecretBox
from shared.webhooks.sender import AttemptResult, message_body, send
from shared.webhooks.ssrf import AddressGuard

log = structlog.get_logger(__name__)


def rate_quota(tat: datetime | None, now: datetime, rate_per_s: float, burst: int) -> tuple[int, datetime]:
    """GCRA: how many requests an endpoint may start now, and the arrival time to advance from."""
    interval = 1.0 / rate_per_s
    base = now if tat is None or tat < now else tat
    allowed = math.floor(((now - base).total_seconds() + burst * interval) / interval + 1e-9)
    return max(0, allowed), base


class Dispatcher:
    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, guard: AddressGuard, box: SecretBox | None = None
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.guard = guard
        self.box = box or SecretBox(settings)
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        rate = settings.webhook_endpoint_rate_per_s
        # The burst lets one poll claim what the rate allows until the next poll.
        self._burst = max(1, min(settings.webhook_endpoint_concurrency, math.ceil(rate * settings.webhook_poll_s)))

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=self.guard.connector(limit=self.settings.webhook_max_in_flight),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.settings.webhook_connect_timeout_s),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        self._loop_task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop claiming, let attempts in flight finish (up to `grace_s`), then close."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._tasks:
            grace = self.settings.webhook_timeout_s + 2 if grace_s is None else grace_s
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:  # their leases run out and another dispatcher retries them
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        await self.guard.close()

    async def _run(self) -> None:
        while not self._stopping:
            claimed = 0
            limit = min(self.settings.webhook_claim_batch, self.settings.webhook_max_in_flight - len(self._tasks))
            if limit > 0:
                try:
                    claimed = await self._claim_and_start(limit)
                except (asyncpg.PostgresError, OSError) as exc:
                    log.warning("webhook_claim_failed", error=str(exc))
            if claimed and claimed == limit:
                continue  # more may be due right now
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.webhook_poll_s)

    async def _claim_and_start(self, limit: int) -> int:
        leases = await self.claim(limit)
        for lease in leases:
            task = asyncio.create_task(self._deliver(lease))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
        return len(leases)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()  # a slot (and maybe an endpoint's concurrency) is free

    async def claim(self, limit: int) -> list[db.Lease]:
        """Lease up to `limit` due deliveries within every endpoint's concurrency and rate limits."""
        s = self.settings
        async with self.pool.acquire() as conn, conn.transaction():
            endpoints = await db.lock_due_endpoints(conn, limit)
            if not endpoints:
                return []
            busy = await db.in_flight(conn, [e["id"] for e in endpoints])
            quotas: dict[int, int] = {}
            bases: dict[int, datetime] = {}
            budget = limit
            for e in endpoints:
                n = min(s.webhook_endpoint_concurrency - busy.get(e["id"], 0), budget)
                if s.webhook_endpoint_rate_per_s > 0:
                    allowed, bases[e["id"]] = rate_quota(
                        e["rate_tat"], e["now"], s.webhook_endpoint_rate_per_s, self._burst
                    )
                    n = min(n, allowed)
                if n > 0:
                    quotas[e["id"]] = n
                    budget -= n
                if budget <= 0:
                    break
            if not quotas:
                return []
            leases = await db.lease(conn, quotas, s.webhook_lease_s)
            if s.webhook_endpoint_rate_per_s > 0:
                interval = timedelta(seconds=1.0 / s.webhook_endpoint_rate_per_s)
                counts = Counter(lease.endpoint_id for lease in leases)
                await db.set_rate_tats(conn, {eid: bases[eid] + n * interval for eid, n in counts.items()})
        return leases

    async def _deliver(self, lease: db.Lease) -> None:
        log_ = log.bind(
            delivery_id=lease.delivery_id,
            endpoint_id=lease.endpoint_id,
            event_id=str(lease.event_id),
            correlation_id=lease.correlation_id,
        )
        try:
            result = await self._attempt(lease)
            decision = decide(
                self.settings, step=lease.step, status_code=result.status_code, retry_after=result.retry_after
            )
            await self.record(lease, result, decision)
            metrics.WEBHOOK_DELIVERIES.labels(outcome=str(decision.verdict)).inc()
            metrics.WEBHOOK_LATENCY.observe(result.latency_ms / 1000)
            log_.info(
                "webhook_attempt",
                attempt=lease.attempt,
                status_code=result.status_code,
                verdict=str(decision.verdict),
                latency_ms=result.latency_ms,
                error=result.error,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and the delivery is retried; nothing is lost.
            metrics.WEBHOOK_DELIVERIES.labels(outcome="error").inc()
            log_.exception("webhook_delivery_error")

    async def _attempt(self, lease: db.Lease) -> AttemptResult:
        assert self._session is not None
        secrets = [self.box.decrypt(lease.secret_enc)]
        if lease.old_secret_enc:
            secrets.append(self.box.decrypt(lease.old_secret_enc))
        return await send(
            self._session,
            self.guard,
            url=lease.url,
            msg_id=str(lease.event_id),
            body=message_body(lease.event_type, lease.event_time, lease.data),
            secrets=secrets,
            allow_http=self.settings.webhooks_allow_http,
            timeout_s=self.settings.webhook_timeout_s,
            max_body=self.settings.webhook_response_max_bytes,
        )

    async def record(self, lease: db.Lease, result: AttemptResult, decision: Decision) -> None:
        error = result.error
        if error is None and decision.verdict is not Verdict.SUCCEEDED:
            error = f"HTTP {result.status_code}"
        async with self.pool.acquire() as conn, conn.transaction():
            await db.insert_attempt(
                conn,
                lease=lease,
                status_code=result.status_code,
                latency_ms=result.latency_ms,
                error=error,
                response_body=result.body,
            )
            if decision.verdict is Verdict.SUCCEEDED:
                if await self._finish(conn, lease, "succeeded", decision, result, error):
                    await db.note_success(conn, lease.endpoint_id)
                return
            if decision.verdict is Verdict.GONE:
                if await self._finish(conn, lease, "failed", decision, result, error):
                    await db.disable_endpoint(conn, lease.endpoint_id, "the endpoint answered 410 Gone")
                    log.warning("webhook_endpoint_disabled", endpoint_id=lease.endpoint_id, reason="gone")
                return
            streak = await db.note_failure(conn, lease.endpoint_id)
            if streak is None:
                return
            since, now, enabled = streak
            disable = enabled and now - since >= self.settings.webhook_disable_after
            if decision.verdict is Verdict.FAILED:
                status = "failed"
            else:
                status = "pending" if enabled and not disable else "skipped"
            if not await self._finish(conn, lease, status, decision, result, error):
                return
            if disable:
                reason = f"failing continuously since {since.isoformat()}"
                await db.disable_endpoint(conn, lease.endpoint_id, reason)
                log.warning("webhook_endpoint_disabled", endpoint_id=lease.endpoint_id, reason="failing")

    @staticmethod
    async def _finish(
        conn: Conn, lease: db.Lease, status: str, decision: Decision, result: AttemptResult, error: str | None
    ) -> bool:
        done = await db.finish_delivery(
            conn,
            lease,
            status=status,
            step=decision.step,
            delay_s=decision.delay_s if status == "pending" else None,
            status_code=result.status_code,
            error=error,
        )
        if not done:
            log.info("webhook_lease_lost", delivery_id=lease.delivery_id)
        return done
