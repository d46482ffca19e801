"""Submission: buy each placed order from its upstream exactly once.

1. Claim: the still-pending orders become 'submitting' and that is COMMITTED before any upstream call, so a
   crash from here on can never lead to an unguarded second `add` (see the sweeper).
2. Call the upstream `add` for each claimed order, concurrently; just before each request is written, its
   "about to send" mark is committed (`shared.worker.sending`): a claim without it was provably never sent.
3. Record every classified answer in one transaction (retried while the database is unavailable: the answers
   are known, only the database is missing):
   accepted → 'in_progress' + capture + event; refused → 'canceled' + full refund + events;
   out of funds / not sent → 'pending' with backoff (the sweeper retries); unknown → 'pending' with backoff
   when the provider honours request_id (the retry sends the same id, so it buys nothing twice), else parked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import structlog

from shared.db import accounts
from shared.db.orders import cancels as cancels_sql
from shared.db.orders import submission as sql
from shared.db.orders.locks import LockedOrder, lock_orders
from shared.db.pool import DATABASE_UNAVAILABLE
from shared.db.types import Conn
from shared.domain.lifecycle import PollSchedule, RetrySchedule, upstream_add_params, upstream_request_id
from shared.domain.statuses import OrderState
from shared.failpoints import Failpoints
from shared.observability import metrics
from shared.ordering.settlement import Settlement
from shared.settings import Settings
from shared.upstream.results import Accepted, AddResult, NotSent, OutOfFunds, Refused, Unknown
from shared.worker.sending import SendMarks
from shared.worker.tx import in_transaction
from shared.worker.upstreams import UnknownProvider, Upstreams

log = structlog.get_logger(__name__)

# States in which the answer to our own `add` still decides the order: 'unknown' too, because the sweeper may
# have parked a slow call that then answered (a definite answer beats "unknown"); an operator's resolution
# moved the order on, and the attempt number no longer matching means the answer is stale.
_AWAITING_ANSWER = (OrderState.SUBMITTING, OrderState.UNKNOWN)


class Submitter:
    def __init__(self, pool: asyncpg.Pool, upstreams: Upstreams, settings: Settings, failpoints: Failpoints) -> None:
        self._pool = pool
        self._upstreams = upstreams
        self._settings = settings
        self._failpoints = failpoints
        self._retry = RetrySchedule(base_s=settings.worker_retry_base_s, max_s=settings.worker_retry_max_s)
        self._poll = poll_schedule(settings)
        self._marks = SendMarks(pool)

    async def submit_named(self, order_ids: Sequence[int]) -> int:
        """Submit the orders named by `order.placed` messages that are still pending; returns how many."""

        async def claim(conn: Conn) -> list[sql.Submission]:
            claimed = await sql.claim_named(conn, order_ids)
            if claimed:
                # The reservation just lowered these balances: alert the accounts that crossed their threshold.
                alerts = await accounts.arm_low_balance_alerts(
                    conn,
                    account_ids=[s.account_id for s in claimed],
                    default=self._settings.low_balance_threshold,
                )
                settlement = Settlement()
                settlement.low_balance(alerts)
                await settlement.write(conn)
            return claimed

        return await self._submit(await in_transaction(self._pool, claim))

    async def submit_due(self, *, limit: int = 100) -> int:
        """Retry pending orders whose backoff ran out, and submit those whose message never came."""
        grace = self._settings.worker_submit_grace_s

        async def claim(conn: Conn) -> list[sql.Submission]:
            return await sql.claim_due(conn, grace_s=grace, limit=limit)

        return await self._submit(await in_transaction(self._pool, claim))

    async def _submit(self, claimed: list[sql.Submission]) -> int:
        if not claimed:
            return 0
        self._failpoints.hit("worker.after_claim")
        answers = await asyncio.gather(*(self._add(s) for s in claimed))
        self._failpoints.hit("worker.before_record")
        await self._record_answers(claimed, answers)
        return len(claimed)

    async def _record_answers(self, claimed: list[sql.Submission], answers: list[AddResult]) -> None:
        """Record the answers; while the database is unavailable, keep them and try again (up to
        `worker_submitting_timeout_s`): an order the upstream accepted is then recorded as bought, not left for
        the sweeper to take for one whose worker stopped."""

        async def record(conn: Conn) -> None:
            await self._record(conn, claimed, answers)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.worker_submitting_timeout_s
        delay = 0.2
        while True:
            try:
                await in_transaction(self._pool, record)
                return
            except DATABASE_UNAVAILABLE as exc:
                outcomes = {s.id: _answer_text(a) for s, a in zip(claimed, answers, strict=True)}
                if loop.time() + delay > deadline:
                    # The sweeper will find these claims stale; this line keeps what the upstream said (e.g. the
                    # provider order id of an accepted one, for `panelflow orders resolve --provider-order`).
                    log.error("order_answers_unrecorded", reason=_unavailable(exc), answers=outcomes)
                    raise
                log.error("order_answers_record_retry", reason=_unavailable(exc), answers=outcomes, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _add(self, order: sql.Submission) -> AddResult:
        if order.provider_id is None or order.provider_service_id is None:
            return NotSent("the service has no upstream provider")
        try:
            client = await self._upstreams.client(order.provider_id)
        except UnknownProvider as exc:
            return NotSent(str(exc))
        params = upstream_add_params(
            provider_service_id=order.provider_service_id,
            request_id=upstream_request_id(order.id, order.created_us),
            link=order.link,
            params=order.params,
        )
        try:
            return await client.add(params, before_send=self._marks.before_send(order.id, order.attempt))
        except Exception as exc:  # a bug, not an answer: the request may have gone out, so never assume it did not
            log.exception("upstream_add_crashed", order_id=order.id)
            return Unknown(f"client error: {type(exc).__name__}: {exc}"[:300])

    async def _record(self, conn: Conn, claimed: list[sql.Submission], answers: list[AddResult]) -> None:
        by_id = {s.id: (s, a) for s, a in zip(claimed, answers, strict=True)}
        settlement = Settlement()
        purchases: list[sql.Purchase] = []
        for locked in await lock_orders(conn, list(by_id)):
            order, answer = by_id[locked.view.id]
            if locked.view.state not in _AWAITING_ANSWER or locked.submit_attempts != order.attempt:
                log.warning("submit_answer_stale", order_id=order.id, state=str(locked.view.state), answer=repr(answer))
                continue
            await self._apply(conn, settlement, purchases, locked, order, answer)
        settlement.bought(await sql.mark_accepted(conn, purchases))
        metrics.REFUNDS.inc(await settlement.write(conn))

    async def _apply(
        self,
        conn: Conn,
        settlement: Settlement,
        purchases: list[sql.Purchase],
        locked: LockedOrder,
        order: sql.Submission,
        answer: AddResult,
    ) -> None:
        view = locked.view
        # Orders of one batch come from many requests: each line carries its own order's correlation id.
        bound = log.bind(
            order_id=view.id, provider_id=order.provider_id, attempt=order.attempt, correlation_id=locked.correlation_id
        )
        match answer:
            case Accepted(provider_order_id=provider_order_id):
                assert order.provider_id is not None
                purchases.append(sql.Purchase(view.id, order.provider_id, provider_order_id, self._poll.delay(0)))
                settlement.order_moved(
                    view,
                    state=OrderState.IN_PROGRESS,
                    start_count=view.start_count,
                    remains=view.remains,
                    correlation_id=locked.correlation_id,
                )
                bound.info("order_submitted", provider_order_id=provider_order_id)
                metrics.SUBMISSIONS.labels(outcome="accepted").inc()
            case Refused(message=message):
                await cancels_sql.finish_canceled(conn, order_id=view.id, error=f"refused upstream: {message}")
                settlement.order_moved(
                    view,
                    state=OrderState.CANCELED,
                    start_count=view.start_count,
                    remains=view.quantity,
                    memo=f"refused upstream: {message}"[:200],
                    correlation_id=locked.correlation_id,
                )
                bound.info("order_refused_upstream", reason=message)
                metrics.SUBMISSIONS.labels(outcome="refused").inc()
            case OutOfFunds(message=reason) | NotSent(reason=reason):
                delay = self._retry.delay(order.attempt)
                await sql.mark_retry(conn, order_id=view.id, delay_s=delay, error=f"{type(answer).__name__}: {reason}")
                # Ops must hear of it: our money at the provider ran out, or the provider is unreachable.
                bound.error("order_submit_deferred", outcome=type(answer).__name__, reason=reason, retry_in_s=delay)
                metrics.SUBMISSIONS.labels(outcome="retried").inc()
            case Unknown(reason=reason) if order.idempotent:
                # The provider honours request_id: sending the same request again answers the order it may
                # already have, or buys it once. Retried with backoff like an order that was not sent.
                delay = self._retry.delay(order.attempt)
                error = f"outcome unknown ({reason}): the same request_id is sent again (the provider honours it)"
                await sql.mark_retry(conn, order_id=view.id, delay_s=delay, error=error)
                bound.error("order_submit_deferred", outcome="Unknown", reason=reason, resend=True, retry_in_s=delay)
                metrics.SUBMISSIONS.labels(outcome="retried").inc()
            case Unknown(reason=reason):
                await sql.mark_parked(conn, order_id=view.id, error=f"outcome unknown: {reason}")
                bound.error("order_parked", reason=reason)
                metrics.SUBMISSIONS.labels(outcome="parked").inc()


def _answer_text(answer: AddResult) -> str:
    if isinstance(answer, Accepted):
        return f"accepted upstream as {answer.provider_order_id}"
    return repr(answer)[:200]


def _unavailable(exc: BaseException) -> str:
    return f"database unavailable after the upstream answered: {type(exc).__name__}: {exc}"[:300]


def poll_schedule(settings: Settings) -> PollSchedule:
    return PollSchedule(
        min_s=settings.worker_poll_min_s,
        max_s=settings.worker_poll_max_s,
        age_factor=settings.worker_poll_age_factor,
    )
