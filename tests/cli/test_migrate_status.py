"""`panelflow migrate status` (applied, pending, checksums, exit codes), a migration file changed after it was
applied, the checksum backfill of a database migrated before checksums were kept, and `migrate --wait`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from shared.db.migrate import available
from shared.db.pool import ensure_database
from shared.settings import Settings
from tests.cli.conftest import PANELFLOW, run_cli
from tests.support.processes import ROOT, free_port, settings_env

LATEST = available()[-1]
CHECKSUMS = next(m for m in available() if m.name == "migration_checksums")  # the migration that added them


@pytest.fixture
def migrated(fresh_settings: Settings) -> Settings:
    assert run_cli(fresh_settings, "migrate").code == 0
    return fresh_settings


async def _execute(settings: Settings, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


def _status(settings: Settings) -> tuple[int, dict[str, Any]]:
    result = run_cli(settings, "migrate", "status", "--json")
    return result.code, json.loads(result.out)


async def test_status_of_an_up_to_date_database_lists_every_file_with_its_checksum(migrated: Settings) -> None:
    code, status = _status(migrated)
    assert code == 0
    assert status["up_to_date"] is True
    assert status["pending"] == []
    assert [(a["version"], a["checksum"], a["changed"]) for a in status["applied"]] == [
        (m.version, m.checksum, False) for m in available()
    ]
    human = run_cli(migrated, "migrate", "status")
    assert human.code == 0
    header, *rows = human.out.splitlines()
    assert header.split() == ["VERSION", "NAME", "STATE", "APPLIED", "AT", "CHECKSUM"]
    assert len(rows) == len(available())
    # Aligned: every row's checksum starts in the header's CHECKSUM column.
    column = header.index("CHECKSUM")
    assert all(row[column:] == m.checksum for row, m in zip(rows, available(), strict=True))


async def test_pending_migration_exit_3_then_migrate_applies_it(migrated: Settings) -> None:
    await _execute(migrated, "DELETE FROM schema_migrations WHERE version = $1", LATEST.version)
    code, status = _status(migrated)
    assert code == 3
    assert status["up_to_date"] is False
    assert [p["version"] for p in status["pending"]] == [LATEST.version]
    human = run_cli(migrated, "migrate", "status")
    assert human.code == 3
    assert "1 migrations pending" in human.err
    applied = run_cli(migrated, "migrate")
    assert (applied.code, applied.out.strip()) == (0, f"applied migrations: {LATEST.version:03d}")
    assert _status(migrated)[0] == 0


async def test_a_file_changed_after_it_was_applied_is_detected_and_migrate_refuses(migrated: Settings) -> None:
    first = available()[0]
    # As if 001's file had been edited since: the recorded checksum no longer matches the shipped file.
    await _execute(migrated, "UPDATE schema_migrations SET checksum = $1 WHERE version = $2", "0" * 64, first.version)
    await _execute(migrated, "DELETE FROM schema_migrations WHERE version = $1", LATEST.version)
    code, status = _status(migrated)
    assert code == 4  # a changed file outranks a pending one
    assert [a["version"] for a in status["applied"] if a["changed"]] == [first.version]
    refused = run_cli(migrated, "migrate")
    assert refused.code == 4, refused
    assert f"{first.version:03d}_{first.name}" in refused.err
    assert "Traceback" not in refused.err
    assert _status(migrated)[1]["pending"] != [], "nothing was applied"


async def test_a_database_migrated_before_checksums_gets_them_recorded(migrated: Settings) -> None:
    # Its checksum migration (and the latest) not applied yet: migrate applies them, then backfills the rest.
    await _execute(
        migrated, "DELETE FROM schema_migrations WHERE version = ANY($1::int[])", [CHECKSUMS.version, LATEST.version]
    )
    await _execute(migrated, "ALTER TABLE schema_migrations DROP COLUMN checksum")
    code, status = _status(migrated)
    assert code == 3
    assert {a["checksum"] for a in status["applied"]} == {None}
    assert run_cli(migrated, "migrate").code == 0
    code, status = _status(migrated)
    assert code == 0
    assert [a["checksum"] for a in status["applied"]] == [m.checksum for m in available()]


async def test_status_of_a_database_never_migrated_lists_everything_pending(fresh_settings: Settings) -> None:
    missing = run_cli(fresh_settings, "migrate", "status")
    missing.assert_user_error(says="does not exist")  # status creates nothing
    await ensure_database(fresh_settings.database_url)
    code, status = _status(fresh_settings)
    assert code == 3
    assert status["applied"] == []
    assert [p["version"] for p in status["pending"]] == [m.version for m in available()]


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_migrate_wait_waits_for_the_database_to_come_up(fresh_settings: Settings) -> None:
    """The database's port answers nothing (a Postgres still starting) until the command has said it is waiting
    and has tried for a while more; then a proxy to the database opens on that port and the migration goes through.
    Waiting for its words, not for a fixed time, keeps the test right on a machine where the CLI is slow to start."""
    real = urlsplit(fresh_settings.database_url)
    port = free_port()
    late = fresh_settings.model_copy(
        update={"database_url": fresh_settings.database_url.replace(real.netloc.split("@")[-1], f"127.0.0.1:{port}")}
    )

    async def proxy(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(real.hostname, real.port or 5432)
        await asyncio.gather(_forward(client_reader, upstream_writer), _forward(upstream_reader, client_writer))

    proc = await asyncio.create_subprocess_exec(
        str(PANELFLOW), "migrate", "--wait", "--wait-timeout", "60",
        cwd=ROOT, env=settings_env(late), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    said = b""
    while b"waiting for the database" not in said:
        line = await asyncio.wait_for(proc.stderr.readline(), timeout=60)
        assert line, ("the command ended without waiting", said)
        said += line
    await asyncio.sleep(1.5)  # a few more refused attempts
    assert proc.returncode is None, "still waiting"
    server = await asyncio.start_server(proxy, "127.0.0.1", port)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        server.close()
    assert proc.returncode == 0, (out, said + err)
    assert "created database" in out.decode()
    assert _status(fresh_settings)[0] == 0


def test_migrate_wait_gives_up_after_its_timeout(settings: Settings) -> None:
    nowhere = settings.model_copy(update={"database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/x"})
    started = time.monotonic()
    result = run_cli(nowhere, "migrate", "--wait", "--wait-timeout", "2")
    assert result.code == 1, result
    assert "cannot reach the database" in result.err
    assert 2 <= time.monotonic() - started < 30


def test_status_wait_gives_up_after_its_timeout(settings: Settings) -> None:
    nowhere = settings.model_copy(update={"database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/x"})
    result = run_cli(nowhere, "migrate", "status", "--wait", "--wait-timeout", "2")
    assert result.code == 1, result
    assert "waiting for the database" in result.err
    assert "cannot reach the database" in result.err
