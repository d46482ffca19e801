"""Readiness against the schema: a process is not ready while its database lacks a migration its code expects.

A rollout that starts new code before `panelflow migrate` ran (or against a restored older database) keeps the
new pods out of service instead of failing requests on a missing column. The check logs `schema_behind` when
it starts failing and `schema_current` when it passes again, and sets `panelflow_schema_migrations_pending`.
A database *ahead* of the code (a rollback to the previous release) is ready: migrations only add.
"""

from __future__ import annotations

import asyncpg
import structlog

from shared.db.migrate import available, pending_versions
from shared.observability import metrics
from shared.observability.http import CHECK_TIMEOUT_S, Check, NotReady

log = structlog.get_logger(__name__)


class SchemaBehind(NotReady):
    pass


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
