"""Postgres's side of a measured window: `pg_stat_statements` per statement, the WAL written, and the plans
(`EXPLAIN (ANALYZE, BUFFERS, WAL)` through `auto_explain`, nested statements included) of the placement
statement and of the dispatcher's round, run inside a transaction that is rolled back.

Needs a server with `shared_preload_libraries=pg_stat_statements` (bench.profile starts a private one).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from decimal import Decimal
from typing import Any

import asyncpg

from shared.db import placement, webhook_dispatch
from shared.db.webhook_dispatch import Finish, IncomingEvent

STATEMENTS = """
SELECT s.query, s.toplevel, s.calls, s.rows, s.total_exec_time, s.total_plan_time, s.shared_blks_hit,
       s.shared_blks_read, s.shared_blks_dirtied, s.shared_blks_written, s.wal_records, s.wal_fpi, s.wal_bytes
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = $1
ORDER BY s.total_exec_time + s.total_plan_time DESC
LIMIT $2
"""


def _text(query: str, width: int = 160) -> str:
    flat = re.sub(r"\s+", " ", query).strip()
    return flat if len(flat) <= width else flat[: width - 1] + "…"


async def reset(conn: asyncpg.Connection) -> str:
    """Forget the statistics so far; the WAL position now (for `wal_since`)."""
    await conn.execute("SELECT pg_stat_statements_reset()")
    lsn: str = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
    return lsn


async def wal_since(conn: asyncpg.Connection, lsn: str) -> int:
    written: Decimal = await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)", lsn)
    return int(written)


async def statements(conn: asyncpg.Connection, database: str, units: int, top: int = 15) -> list[dict[str, Any]]:
    """The costliest statements on `database` since the reset, per call and per unit of the window. Times are
    the statements' wall time in the server (CPU, and waiting for locks and I/O); nested statements (inside a
    function such as `webhook_claim`) appear on their own with `toplevel` false, and inside their caller's."""
    rows = await conn.fetch(STATEMENTS, database, top)
    per = max(units, 1)
    found = []
    for r in rows:
        calls = max(r["calls"], 1)
        found.append(
            {
                "query": _text(r["query"]),
                "toplevel": r["toplevel"],
                "calls": r["calls"],
                "rows_per_call": round(r["rows"] / calls, 2),
                "exec_ms_mean": round(r["total_exec_time"] / calls, 3),
                "exec_us_per_unit": round(r["total_exec_time"] * 1000 / per, 1),
                "plan_us_per_unit": round(r["total_plan_time"] * 1000 / per, 1),
                "calls_per_unit": round(r["calls"] / per, 3),
                "wal_bytes_per_unit": round(int(r["wal_bytes"]) / per, 1),
                "wal_records_per_call": round(r["wal_records"] / calls, 1),
                "wal_fpi": r["wal_fpi"],
                "blocks_per_call": {
                    "hit": round(r["shared_blks_hit"] / calls, 1),
                    "read": round(r["shared_blks_read"] / calls, 1),
                    "dirtied": round(r["shared_blks_dirtied"] / calls, 1),
                    "written": round(r["shared_blks_written"] / calls, 1),
                },
            }
        )
    return found


# --- plans ---------------------------------------------------------------------------------------------------


class _RolledBack(Exception):
    pass


async def _explained(conn: asyncpg.Connection, work: Any) -> list[str]:
    """Run `work(conn)` in a transaction that is rolled back, with every statement's plan (nested too) sent
    back as a notice by auto_explain; the plans' texts."""
    # Once without plans: asyncpg's type introspection on first use is not what we look at.
    with contextlib.suppress(_RolledBack):
        async with conn.transaction():
            await work(conn)
            raise _RolledBack
    plans: list[str] = []

    def on_notice(_conn: Any, message: Any) -> None:
        plans.append(str(message.message))

    conn.add_log_listener(on_notice)
    try:
        await conn.execute("LOAD 'auto_explain'")
        for setting in (
            "auto_explain.log_min_duration = 0", "auto_explain.log_analyze = on", "auto_explain.log_buffers = on",
            "auto_explain.log_wal = on", "auto_explain.log_nested_statements = on", "auto_explain.log_timing = on",
            "auto_explain.log_level = notice", "client_min_messages = notice",
            # As asyncpg's prepared statements end up: the generic plan.
            "plan_cache_mode = force_generic_plan",
        ):  # fmt: skip
            await conn.execute(f"SET {setting}")
        tx = conn.transaction()
        await tx.start()
        try:
            await work(conn)
        finally:
            await tx.rollback()
    finally:
        await conn.execute("RESET ALL")
        conn.remove_log_listener(on_notice)
    return plans


async def placement_plans(conn: asyncpg.Connection, sizes: tuple[int, ...] = (1, 8, 32)) -> dict[str, list[str]]:
    """The placement statement's plan for batches of `sizes` orders, each of a different account, on the
    benchmark's data (rolled back)."""
    service_id = await conn.fetchval("SELECT id FROM services ORDER BY id LIMIT 1")
    account_ids = [r["id"] for r in await conn.fetch("SELECT id FROM accounts ORDER BY id LIMIT $1", max(sizes))]
    found = {}
    for size in sizes:
        orders = [
            placement.NewOrder(
                account_id=account_ids[i % len(account_ids)],
                request_id=f"explain-{uuid.uuid4().hex}",
                params_hash=uuid.uuid4().bytes,
                service_id=service_id,
                type="Default",
                link=f"https://example.test/explain/{i}",
                quantity=100,
                params={},
                rate=Decimal("0.9"),
                charge=Decimal("0.09"),
                currency="USD",
                correlation_id=uuid.uuid4().hex,
            )
            for i in range(size)
        ]

        async def place(c: asyncpg.Connection, batch: list[placement.NewOrder] = orders) -> None:
            await placement.place_batch(c, batch)

        found[f"batch_of_{size}"] = await _explained(conn, place)
    return found


async def dispatcher_plans(conn: asyncpg.Connection, events: int = 64) -> list[str]:
    """The dispatcher's round on the benchmark's data (rolled back): `events` events fanned out into
    deliveries, a claim of them, and their results written back as successes."""
    accounts = [r["account_id"] for r in await conn.fetch("SELECT DISTINCT account_id FROM webhook_endpoints")]
    if not accounts:
        return []
    incoming = [
        IncomingEvent(
            id=uuid.uuid4(),
            account_id=accounts[i % len(accounts)],
            type="order.status_changed",
            data='{"order": 1, "status": "Completed"}',
            correlation_id=uuid.uuid4().hex,
        )
        for i in range(events)
    ]

    async def round_(c: asyncpg.Connection) -> None:
        await webhook_dispatch.ingest_events(c, incoming)
        leases = await webhook_dispatch.claim(c, limit=events, concurrency=10, rate_per_s=0, burst=1, lease_s=30)
        finishes = [
            Finish(
                lease=lease,
                status="succeeded",
                step=0,
                delay_s=None,
                status_code=200,
                latency_ms=1,
                error=None,
                response_body=None,
            )
            for lease in leases
        ]
        await webhook_dispatch.finish_round(c, finishes, [])

    return await _explained(conn, round_)
