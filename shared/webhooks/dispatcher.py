"""The delivery loop: lease due deliveries from Postgres, send them, record each attempt and its verdict.

Several dispatchers may run at once. A claim (one database call, `webhook_claim`) locks the endpoints it
serves (`FOR NO KEY UPDATE SKIP LOCKED`), so per-endpoint concurrency and rate limits hold across all of them;
each leased delivery carries a token and a lease deadline in `next_attempt_at`: a dispatcher killed mid-send
loses the lease when it runs out and another one retries (same `webhook-id`, so receivers dedupe). The attempts
that end while a round of results is being written are written together in the next round (group commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math

import aiohttp
import asyncpg
import structlog
from prometheus_client import Counter

from shared.db import webhook_dispatch as db
from shared.db.pool import DATABASE_ERRORS, HeldConnection
from shared.kit.group_commit import GroupCommit, no_results
from shared.kit.supervisor import Beat, stall_after, supervise
from shared.logging import context_without_message
from shared.net.guard import AddressGuard
from shared.observability import metrics
from shared.settings import Settings
from shared.webhooks.recording import Outcome, record_round, unstorable
from shared.webhooks.schedule import Decision, Verdict, decide
from shared.webhooks.secretbox import SecretBox
from shared.webhooks.sender import AttemptResult, message_body, send

log = structlog.get_logger(__name__)

SECRET_CACHE_SIZE = 10_000
# What the database (or asyncpg, encoding an argument) raises for a value it cannot store: data exceptions
# (SQLSTATE 22: NUL in text, a number out of range) and constraint violations. Anything else (a lost connection)
# is not the row's fault and is not degraded.
_REFUSED_DATA = (asyncpg.exceptions.DataError, asyncpg.exceptions.IntegrityConstraintViolationError, ValueError)


class Dispatcher:
    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, guard: AddressGuard, box: SecretBox | None = None
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.guard = guard
        self.box = box or SecretBox(settings)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        rate = settings.webhook_endpoint_rate_per_s
        # The burst lets one poll claim what the rate allows until the next poll.
        self._burst = max(1, min(settings.webhook_endpoint_concurrency, math.ceil(rate * settings.webhook_poll_s)))
        self._recorder: GroupCommit[Outcome, None] = GroupCommit(
            no_results(self.record),
            max_size=settings.webhook_record_batch,
            retry_alone=True,  # one result the database refuses fails alone
            context=context_without_message,
        )
        self._secrets: dict[str, str] = {}  # encrypted secret → secret
        # The claim loop and the recorder each write serially: each keeps its connection.
        self._claim_conn = HeldConnection(pool)
        self._record_conn = HeldConnection(pool)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=self.guard.connector(limit=self.settings.webhook_max_in_flight),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.settings.webhook_connect_timeout_s),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        self._stopping.clear()
        self._loop_task = supervise(
            "webhook-claim",
            self._run,
            stopping=self._stopping,
            stall_after_s=stall_after(self.settings.loop_stall_s, self.settings.webhook_poll_s),
        )

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop claiming, let attempts in flight finish (up to `grace_s`), then close."""
        self._stopping.set()
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._tasks:
            grace = self.settings.webhook_timeout_s + 2 if grace_s is None else grace_s
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:  # their leases run out and another dispatcher retries them
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._recorder.close()
        await self._claim_conn.close()
        await self._record_conn.close()
        if self._session is not None:
            await self._session.close()
        await self.guard.close()

    async def _run(self, beat: Beat) -> None:
        while not self._stopping.is_set():
            beat()
            claimed = 0
            limit = min(self.settings.webhook_claim_batch, self.settings.webhook_max_in_flight - len(self._tasks))
            if limit > 0:
                try:
                    claimed = await self._claim_and_start(limit)
                except DATABASE_ERRORS as exc:
                    # The held connection was given back; the next round claims on a fresh one.
                    log.warning("webhook_claim_failed", error=f"{type(exc).__name__}: {exc}")
            if claimed and claimed == limit:
                continue  # more may be due right now
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.webhook_poll_s)

    async def _claim_and_start(self, limit: int) -> int:
        leases = await self.claim(limit)
        for lease in leases:
            capped = lease.run_attempt > self.settings.webhook_max_attempts
            task = asyncio.create_task(self._give_up(lease) if capped else self._deliver(lease))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
        return len(leases)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()  # a slot (and maybe an endpoint's concurrency) is free

    async def claim(self, limit: int) -> list[db.Lease]:
        """Lease up to `limit` due deliveries within every endpoint's concurrency and rate limits."""
        s = self.settings
        async with self._claim_conn.use() as conn:
            return await db.claim(
                conn,
                limit=limit,
                concurrency=s.webhook_endpoint_concurrency,
                rate_per_s=max(0.0, s.webhook_endpoint_rate_per_s),
                burst=self._burst,
                lease_s=s.webhook_lease_s,
            )

    async def _deliver(self, lease: db.Lease) -> None:
        recorded = False
        try:
            result = await self._attempt(lease)
            decision = decide(
                self.settings, step=lease.step, status_code=result.status_code, retry_after=result.retry_after
            )
            # Written with the other attempts that ended meanwhile; the slot stays taken until then.
            await self._recorder.submit(Outcome(lease, result, decision))
            recorded = True
            _delivered(str(decision.verdict)).inc()
            metrics.WEBHOOK_LATENCY.observe(result.latency_ms / 1000)
            log.info(
                "webhook_attempt",
                **_context(lease),
                attempt=lease.attempt,
                status_code=result.status_code,
                verdict=str(decision.verdict),
                latency_ms=result.latency_ms,
                error=result.error,
            )
        except asyncio.CancelledError:
            raise
        except DATABASE_ERRORS as exc:
            # Sent, but the result could not be written (the database is away): the lease runs out and the
            # delivery is retried (same webhook-id: receivers dedupe). Nothing is lost.
            _delivered("error").inc()
            log.warning("webhook_record_failed", **_context(lease), error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            # Broken in our code (not the database): recorded as a failed attempt, on the retry schedule.
            _delivered("error").inc()
            log.exception("webhook_delivery_error", **_context(lease))
            if not recorded:
                await self._record_failure(lease, exc)

    async def _give_up(self, lease: db.Lease) -> None:
        """A delivery leased more than `webhook_max_attempts` times in its run: failed, not sent again."""
        _delivered("capped").inc()
        log.warning("webhook_attempts_capped", **_context(lease), run_attempt=lease.run_attempt)
        result = AttemptResult(
            None, 0, error=f"not sent: over webhook_max_attempts ({self.settings.webhook_max_attempts})"
        )
        try:
            await self._recorder.submit(Outcome(lease, result, Decision(Verdict.FAILED, step=lease.step)))
        except Exception:
            log.exception("webhook_failure_unrecorded", **_context(lease))

    async def _record_failure(self, lease: db.Lease, exc: Exception) -> None:
        """An attempt that broke in our code counts as a failed attempt, on the retry schedule: never a lease
        that runs out and is claimed again and again outside it. If even that cannot be written, the lease runs
        out and the delivery is retried."""
        result = AttemptResult(None, 0, error=f"internal error: {type(exc).__name__}")
        decision = decide(self.settings, step=lease.step, status_code=None)
        try:
            await self._recorder.submit(Outcome(lease, result, decision))
        except Exception:
            log.exception("webhook_failure_unrecorded", **_context(lease))

    async def record(self, outcomes: list[Outcome]) -> None:
        async with self._record_conn.use() as conn:
            try:
                await record_round(conn, self.settings, outcomes)
            except _REFUSED_DATA as exc:
                if len(outcomes) != 1:
                    raise  # the group commit writes each outcome alone next: only the refused one is degraded
                log.error("webhook_result_unstorable", **_context(outcomes[0].lease), error=type(exc).__name__)
                await record_round(conn, self.settings, [unstorable(outcomes[0], exc)])

    def _secret(self, token: str) -> str:
        # Decrypting (Fernet: HMAC check and AES) on every attempt costs more than signing; a rotated or deleted
        # endpoint's token simply stops being asked for.
        secret = self._secrets.get(token)
        if secret is None:
            if len(self._secrets) >= SECRET_CACHE_SIZE:
                self._secrets.clear()
            secret = self._secrets[token] = self.box.decrypt(token)
        return secret

    async def _attempt(self, lease: db.Lease) -> AttemptResult:
        assert self._session is not None
        secrets = [self._secret(lease.secret_enc)]
        if lease.old_secret_enc:
            secrets.append(self._secret(lease.old_secret_enc))
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


@functools.cache
def _delivered(outcome: str) -> Counter:
    # The labels() lookup costs more than the increment: the children per outcome (a handful) are kept.
    return metrics.WEBHOOK_DELIVERIES.labels(outcome=outcome)


def _context(lease: db.Lease) -> dict[str, object]:
    # Passed to the one log call rather than bound: a bound logger per delivery costs more than the line.
    return {
        "delivery_id": lease.delivery_id,
        "endpoint_id": lease.endpoint_id,
        "event_id": str(lease.event_id),
        "correlation_id": lease.correlation_id,
    }
