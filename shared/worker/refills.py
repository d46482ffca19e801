"""Refills: `refill.requested` forwarded upstream (where the service allows refills), the upstream refill id
stored, its status polled like orders', and a `refill.status_changed` event for each change.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

import asyncpg
import structlog

from shared.db import outbox
from shared.db import refills as sql
from shared.db.types import Conn
from shared.domain.events import Event, RefillStatusChanged, event
from shared.domain.lifecycle import RetrySchedule, refill_state
from shared.domain.statuses import REFILL_TERMINAL, RefillState, public_refill_status
from shared.settings import Settings
from shared.upstream.results import (
    IdError,
    NotSent,
    OutOfFunds,
    RefillAccepted,
    RefillReport,
    RefillResult,
    Refused,
    Unknown,
    UpstreamError,
)
from shared.worker.submission import poll_schedule
from shared.worker.tx import in_transaction
from shared.worker.upstreams import UnknownProvider, Upstreams

log = structlog.get_logger(__name__)


def refill_event(claim_or_poll: sql.RefillClaim | sql.RefillPoll, state: RefillState) -> Event:
    body = RefillStatusChanged(
        account_id=claim_or_poll.account_id,
        refill=claim_or_poll.id,
        order=claim_or_poll.order_id,
        status=public_refill_status(state),
    )
    return event(RefillStatusChanged.TYPE, body, claim_or_poll.correlation_id)


class Refills:
    def __init__(self, pool: asyncpg.Pool, upstreams: Upstreams, settings: Settings) -> None:
        self._pool = pool
        self._upstreams = upstreams
        self._settings = settings
        self._retry = RetrySchedule(base_s=settings.worker_retry_base_s, max_s=settings.worker_retry_max_s)
        self._schedule = poll_schedule(settings)

    # --- forwarding --------------------------------------------------------------------------------------

    async def forward_named(self, refill_ids: Sequence[int]) -> int:
        async def claim(conn: Conn) -> list[sql.RefillClaim]:
            return await sql.claim_named(conn, refill_ids)

        return await self._forward(await in_transaction(self._pool, claim))

    async def forward_due(self, *, limit: int = 100) -> int:
        grace = self._settings.worker_submit_grace_s

        async def claim(conn: Conn) -> list[sql.RefillClaim]:
            return await sql.claim_due(conn, grace_s=grace, limit=limit)

        return await self._forward(await in_transaction(self._pool, claim))

    async def _forward(self, claimed: list[sql.RefillClaim]) -> int:
        if not claimed:
            return 0
        answers = await asyncio.gather(*(self._call(c) for c in claimed))

        async def record(conn: Conn) -> None:
            for claim, answer in zip(claimed, answers, strict=True):
                await self._record(conn, claim, answer)

        await in_transaction(self._pool, record)
        return len(claimed)

    async def _call(self, claim: sql.RefillClaim) -> RefillResult:
        if not claim.allowed:
            return Refused("the service does not offer refills")
        if claim.provider_id is None or claim.provider_order_id is None:
            return Refused("the order was never bought upstream")
        try:
            client = await self._upstreams.client(claim.provider_id)
            return await client.refill(claim.provider_order_id)
        except UnknownProvider as exc:
            return NotSent(str(exc))
        except Exception as exc:
            log.exception("upstream_refill_crashed", refill_id=claim.id)
            return Unknown(f"client error: {type(exc).__name__}")

    async def _record(self, conn: Conn, claim: sql.RefillClaim, answer: RefillResult) -> None:
        bound = log.bind(refill_id=claim.id, order_id=claim.order_id)
        match answer:
            case RefillAccepted(provider_refill_id=provider_refill_id):
                if await sql.mark_forwarded(
                    conn,
                    refill_id=claim.id,
                    attempt=claim.attempt,
                    provider_refill_id=provider_refill_id,
                    first_poll_s=self._schedule.delay(0),
                ):
                    await outbox.add_event(conn, refill_event(claim, RefillState.IN_PROGRESS))
                    bound.info("refill_forwarded", provider_refill_id=provider_refill_id)
            case Refused(message=message):
                if await sql.mark_rejected(conn, refill_id=claim.id, attempt=claim.attempt, error=message):
                    await outbox.add_event(conn, refill_event(claim, RefillState.REJECTED))
                    bound.info("refill_rejected", reason=message)
            case OutOfFunds(message=reason) | NotSent(reason=reason) | Unknown(reason=reason):
                # Forwarding a refill again costs nothing: the upstream refuses a duplicate, it never bills it.
                delay = self._retry.delay(claim.attempt)
                await sql.mark_retry(conn, refill_id=claim.id, attempt=claim.attempt, delay_s=delay, error=reason)
                bound.warning("refill_forward_deferred", outcome=type(answer).__name__, reason=reason)

    # --- polling -----------------------------------------------------------------------------------------

    async def poll_once(self) -> int:
        async with self._pool.acquire() as conn:
            claims = await sql.claim_due_polls(
                conn, limit=self._settings.worker_poll_claim, lease_s=self._settings.worker_poll_lease_s
            )
        per_provider: dict[int, list[sql.RefillPoll]] = defaultdict(list)
        for claim in claims:
            per_provider[claim.provider_id].append(claim)
        size = self._settings.batch_ids_max
        await asyncio.gather(
            *(
                self._poll_batch(provider_id, group[i : i + size])
                for provider_id, group in per_provider.items()
                for i in range(0, len(group), size)
            )
        )
        return len(claims)

    async def _poll_batch(self, provider_id: int, batch: list[sql.RefillPoll]) -> None:
        try:
            client = await self._upstreams.client(provider_id)
            reports = await client.refill_status([c.provider_refill_id for c in batch])
        except (UpstreamError, UnknownProvider) as exc:
            log.warning("refill_poll_failed", provider_id=provider_id, refills=len(batch), reason=str(exc))
            return

        async def record(conn: Conn) -> None:
            for claim in batch:
                await self._record_status(conn, claim, reports.get(claim.provider_refill_id, IdError("missing")))

        await in_transaction(self._pool, record)

    async def _record_status(self, conn: Conn, claim: sql.RefillPoll, report: RefillReport | IdError) -> None:
        next_s = self._schedule.delay(claim.age_s)
        if isinstance(report, IdError):
            await sql.record_status(
                conn, refill_id=claim.id, status=claim.status, next_poll_s=next_s, error=report.message
            )
            return
        state = refill_state(report.status)
        if state is None:
            await sql.record_status(
                conn, refill_id=claim.id, status=claim.status, next_poll_s=next_s, error=f"status {report.status!r}"
            )
            return
        terminal = state in REFILL_TERMINAL
        if await sql.record_status(conn, refill_id=claim.id, status=state, next_poll_s=None if terminal else next_s):
            await outbox.add_event(conn, refill_event(claim, state))
            log.info("refill_status_changed", refill_id=claim.id, status=str(state))
