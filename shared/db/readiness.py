"""The database's readiness checks (see shared/kit/readiness.py): the database answers, and its schema is current.

`database_check`: a pooled connection answers `SELECT 1` within `CHECK_TIMEOUT_S`.

`schema_check`: a process is not ready while its database lacks a migration its code expects.

A rollout that starts new code before `panelflow migrate` ran (or against a restored older database) keeps the
new pods out of service instead of failing requests on a missing column. The check logs `schema_behind` when
it starts failing and `schema_current` when it passes again, and sets `panelflow_schema_migrations_pending`.
A database *ahead* of the code (a rollback to the previous release) is ready: migrations only add.
"""

from __future__ import annotations

import asyncpg
import structlog

from shared.db.migrate import available, pending_versions
from shared.kit.readiness import CHECK_TIMEOUT_S, Check, NotReady
from shared.observability import metrics

log = structlog.get_logger(__name__)


class SchemaBehind(NotReady):
    pass


def database_check(pool: asyncpg.Pool) -> Check:
    async def check() -> None:
        async with pool.acquire(timeout=CHECK_TIMEOUT_S) as conn:
            await conn.fetchval("SELECT 1", timeout=CHECK_TIMEOUT_S)

    return check


def schema_check(pool: asyncpg.Pool) -> Check:
    expected = frozenset(m.version for m in available())
    behind: list[int] = []

    async def check() -> None:
        async with pool.acquire(timeout=CHECK_TIMEOUT_S) as conn:
            pending = await pending_versions(conn, expected)
        metrics.SCHEMA_MIGRATIONS_PENDING.set(len(pending))
        if pending != behind:
            if pending:
                log.warning("schema_behind", pending=pending, hint="run `panelflow migrate`")
            elif behind:
                log.info("schema_current")
            behind[:] = pending
        if pending:
            listed = ", ".join(f"{v:03d}" for v in pending)
            raise SchemaBehind(f"database lacks migrations {listed}: run `panelflow migrate`")

    return check
