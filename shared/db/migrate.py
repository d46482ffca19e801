"""Numbered plain-SQL migrations, applied in order under an advisory lock, each recorded with its file's checksum.

Safe when several processes start at once (the lock serialises them; the second finds nothing to do). A file
edited after it was applied no longer matches its recorded checksum: `status` reports it and `migrate` refuses to
run until the file is restored (a changed migration is never applied again, so the database would silently differ
from what the files say).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import asyncpg
import structlog

from shared.db.types import Conn

log = structlog.get_logger(__name__)

# An arbitrary constant shared by every panelflow process: "panelflow" in ASCII, truncated.
MIGRATION_LOCK_ID = 0x70616E656C66

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    applied_at: datetime
    checksum: str | None  # None: applied before checksums were recorded and not yet backfilled


@dataclass(frozen=True)
class SchemaStatus:
    applied: list[Applied]
    pending: list[Migration]  # shipped with this code, not applied
    changed: list[Migration]  # applied, and the file now differs from what was applied
    unknown: list[Applied]  # applied, but this code has no such file (a newer release migrated this database)

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.changed


class ChangedMigrationError(RuntimeError):
    """An applied migration's file no longer matches the checksum recorded when it was applied."""


def available() -> list[Migration]:
    folder = resources.files("shared.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        number, _, rest = entry.name.partition("_")
        found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers: {versions}")
    return found


async def _has_table(conn: Conn) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"))


async def _has_checksums(conn: asyncpg.Connection) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'schema_migrations' AND column_name = 'checksum')"
        )
    )


async def applied(conn: asyncpg.Connection) -> list[Applied]:
    """What the database says was applied (empty when it was never migrated)."""
    if not await _has_table(conn):
        return []
    checksum = "checksum" if await _has_checksums(conn) else "NULL::text AS checksum"
    rows = await conn.fetch(f"SELECT version, name, applied_at, {checksum} FROM schema_migrations ORDER BY version")
    return [Applied(r["version"], r["name"], r["applied_at"], r["checksum"]) for r in rows]


def compare(done: list[Applied], shipped: list[Migration]) -> SchemaStatus:
    by_version = {m.version: m for m in shipped}
    done_versions = {a.version for a in done}
    changed = [
        by_version[a.version]
        for a in done
        if a.version in by_version and a.checksum is not None and a.checksum != by_version[a.version].checksum
    ]
    return SchemaStatus(
        applied=done,
        pending=[m for m in shipped if m.version not in done_versions],
        changed=changed,
        unknown=[a for a in done if a.version not in by_version],
    )


async def status(conn: asyncpg.Connection) -> SchemaStatus:
    return compare(await applied(conn), available())


async def pending_versions(conn: Conn, expected: frozenset[int]) -> list[int]:
    """The versions this code expects that the database lacks (all of them when it was never migrated)."""
    if not await _has_table(conn):
        return sorted(expected)
    done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return sorted(expected - done)


async def _record_checksums(conn: asyncpg.Connection, shipped: list[Migration]) -> int:
    """Backfill the checksum of rows applied before checksums were kept, from the files this release ships."""
    filled = 0
    for migration in shipped:
        result = await conn.execute(
            "UPDATE schema_migrations SET checksum = $2 WHERE version = $1 AND checksum IS NULL",
            migration.version,
            migration.checksum,
        )
        filled += int(result.split()[-1])
    return filled


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply every migration not yet applied; returns the versions applied now.

    Raises `ChangedMigrationError` (applying nothing) when an applied migration's file was edited since.
    """
    applied_now: list[int] = []
    shipped = available()
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(_CREATE_TABLE)
        found = compare(await applied(conn), shipped)
        if found.changed:
            raise ChangedMigrationError(
                "migration files changed after they were applied: "
                + ", ".join(f"{m.version:03d}_{m.name}" for m in found.changed)
                + " (restore them as applied; a change belongs in a new migration)"
            )
        for migration in found.pending:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("migration_applied", version=migration.version, name=migration.name)
            applied_now.append(migration.version)
        if await _has_checksums(conn):
            filled = await _record_checksums(conn, shipped)
            if filled:
                log.info("migration_checksums_recorded", migrations=filled)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now
