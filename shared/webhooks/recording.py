"""Recording a round of finished attempts: what each outcome means for its delivery and its endpoint (pure),
and the writes, batched (one statement when everything succeeded; a transaction of three when something failed).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from shared.db import webhook_dispatch as db
from shared.db import webhooks as endpoints_db
from shared.db.types import Conn
from shared.domain.bounds import INT4, external_text
from shared.settings import Settings
from shared.webhooks.schedule import Decision, Verdict
from shared.webhooks.sender import AttemptResult

log = structlog.get_logger(__name__)

GONE_REASON = "the endpoint answered 410 Gone"
# What is stored of an error text (ours, or an exception's) at most.
ERROR_MAX = 500

FAILURES = frozenset({Verdict.RETRY, Verdict.FAILED})


@dataclass(frozen=True)
class Outcome:
    lease: db.Lease
    result: AttemptResult
    decision: Decision

    @property
    def error(self) -> str | None:
        if self.result.error is None and self.decision.verdict is not Verdict.SUCCEEDED:
            return f"HTTP {self.result.status_code}"
        return self.result.error


def endpoint_rounds(outcomes: list[Outcome]) -> tuple[dict[int, db.EndpointRound], list[int]]:
    """Per endpoint that failed in the round, what it did (outcomes in the order the attempts ended); and the
    endpoints that only succeeded (their failure streak, if any, ends). A 410 counts as neither."""
    failed: set[int] = set()
    ok: set[int] = set()
    last_ok: dict[int, bool] = {}
    for o in outcomes:
        eid = o.lease.endpoint_id
        if o.decision.verdict is Verdict.SUCCEEDED:
            ok.add(eid)
            last_ok[eid] = True
        elif o.decision.verdict in FAILURES:
            failed.add(eid)
            last_ok[eid] = False
    rounds = {eid: db.EndpointRound(last_ok=last_ok[eid], any_ok=eid in ok) for eid in failed}
    return rounds, sorted(ok - failed)


def plan_finishes(
    settings: Settings, outcomes: list[Outcome], streaks: dict[int, db.Streak]
) -> tuple[list[db.Finish], dict[int, str]]:
    """Each outcome's delivery status, and the endpoints to disable (id → reason) if their delivery is finished.

    A failure of an endpoint whose streak is missing (deleted meanwhile) finishes nothing. An endpoint failing
    for longer than `webhook_disable_after` is disabled, and its failed delivery kept as skipped."""
    finishes: list[db.Finish] = []
    disables: dict[int, str] = {}
    for o in outcomes:
        verdict, eid = o.decision.verdict, o.lease.endpoint_id
        if verdict is Verdict.SUCCEEDED:
            status = "succeeded"
        elif verdict is Verdict.GONE:
            status = "failed"
            disables[eid] = GONE_REASON
        else:
            streak = streaks.get(eid)
            if streak is None:
                continue
            since = streak.failing_since
            disable = streak.enabled and since is not None and streak.now - since >= settings.webhook_disable_after
            if disable and since is not None:
                disables.setdefault(eid, f"failing continuously since {since.isoformat()}")
            if verdict is Verdict.FAILED:
                status = "failed"
            else:
                status = "pending" if streak.enabled and not disable else "skipped"
        finishes.append(
            db.Finish(
                lease=o.lease,
                status=status,
                step=o.decision.step,
                delay_s=o.decision.delay_s if status == "pending" else None,
                status_code=o.result.status_code,
                latency_ms=o.result.latency_ms,
                # What a receiver sent is stored cleaned (NUL, controls, invalid UTF-8 replaced): Postgres refuses
                # a NUL in TEXT, and one refused row would fail the round of every endpoint.
                error=None if o.error is None else external_text(o.error, limit=ERROR_MAX),
                response_body=None
                if o.result.body is None
                else external_text(o.result.body, limit=settings.webhook_response_max_bytes),
            )
        )
    return finishes, disables


def unstorable(outcome: Outcome, exc: BaseException) -> Outcome:
    """The outcome of an attempt whose result the database refused: the verdict kept, the receiver's answer
    dropped, so the delivery still follows its schedule instead of being leased again and again."""
    result = AttemptResult(
        outcome.result.status_code if _fits_int4(outcome.result.status_code) else None,
        outcome.result.latency_ms if _fits_int4(outcome.result.latency_ms) else 0,
        error=f"the attempt's result could not be stored ({type(exc).__name__})",
    )
    return Outcome(outcome.lease, result, outcome.decision)


def _fits_int4(value: int | None) -> bool:
    return value is not None and INT4[0] <= value <= INT4[1]


async def record_round(conn: Conn, settings: Settings, outcomes: list[Outcome]) -> None:
    """Write a round's attempts and verdicts. A delivery whose lease was lost meanwhile is left as it is."""
    rounds, recovered = endpoint_rounds(outcomes)
    if not rounds and not any(o.decision.verdict is Verdict.GONE for o in outcomes):
        finishes, _ = plan_finishes(settings, outcomes, {})
        finished = await db.finish_round(conn, finishes, recovered)  # one statement: atomic by itself
        disabled: dict[int, str] = {}
    else:
        async with conn.transaction():
            streaks = await db.note_streaks(conn, rounds)
            finishes, disables = plan_finishes(settings, outcomes, streaks)
            finished = await db.finish_round(conn, finishes, recovered)
            done_endpoints = {f.lease.endpoint_id for f in finishes if f.lease.delivery_id in finished}
            disabled = {eid: reason for eid, reason in sorted(disables.items()) if eid in done_endpoints}
            for eid, reason in disabled.items():
                await endpoints_db.disable_endpoint(conn, eid, reason)
    for f in finishes:
        if f.lease.delivery_id not in finished:
            log.info("webhook_lease_lost", delivery_id=f.lease.delivery_id)
    for eid, reason in disabled.items():
        log.warning("webhook_endpoint_disabled", endpoint_id=eid, reason="gone" if reason == GONE_REASON else "failing")
