"""SQL of the sampled gauges (`shared/kit/sampling.py`): cheap reads served by partial indexes."""

from __future__ import annotations

from dataclasses import dataclass

from shared.db.types import Conn

# outbox_claim_idx (migration 004) serves both.
OUTBOX_BACKLOG = """
SELECT count(*) AS backlog,
       coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8 AS oldest_s
FROM outbox WHERE published_at IS NULL
"""

# orders_parked_idx and orders_poll_idx.
WORKER_GAUGES = """
SELECT (SELECT count(*) FROM orders WHERE status = 'unknown') AS parked,
       (SELECT count(*) FROM orders WHERE status IN ('in_progress', 'processing') AND next_attempt_at <= now())
           AS polls_due
"""

# webhook_deliveries_due_idx: a leased delivery's next_attempt_at is its lease end, in the future.
WEBHOOK_GAUGES = """
SELECT (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now()) AS backlog,
       (SELECT coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0)::float8 FROM webhook_deliveries
        WHERE status = 'pending' AND next_attempt_at <= now()) AS oldest_s,
       (SELECT count(*) FROM webhook_endpoints WHERE NOT enabled) AS disabled
"""


@dataclass(frozen=True)
class OutboxGauges:
    backlog: int
    oldest_s: float


@dataclass(frozen=True)
class WorkerGauges:
    parked: int
    polls_due: int


@dataclass(frozen=True)
class WebhookGauges:
    backlog: int
    oldest_s: float
    disabled: int


async def outbox_gauges(conn: Conn) -> OutboxGauges:
    row = await conn.fetchrow(OUTBOX_BACKLOG)
    assert row is not None
    return OutboxGauges(int(row["backlog"]), float(row["oldest_s"]))


async def worker_gauges(conn: Conn) -> WorkerGauges:
    row = await conn.fetchrow(WORKER_GAUGES)
    assert row is not None
    return WorkerGauges(int(row["parked"]), int(row["polls_due"]))


async def webhook_gauges(conn: Conn) -> WebhookGauges:
    row = await conn.fetchrow(WEBHOOK_GAUGES)
    assert row is not None
    return WebhookGauges(int(row["backlog"]), float(row["oldest_s"]), int(row["disabled"]))
