"""`panelflow migrate` on fresh and migrated databases, and the set-up script's quiet path."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import asyncpg

from shared.db.migrate import available
from shared.settings import Settings
from tests.cli.conftest import PANELFLOW, run_cli
from tests.support.processes import ROOT, settings_env


async def _applied(settings: Settings) -> list[int]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()


async def test_migrate_creates_the_database_and_twice_is_a_no_op(fresh_settings: Settings) -> None:
    first = run_cli(fresh_settings, "migrate")
    assert first.code == 0, first
    assert "created database" in first.out
    assert await _applied(fresh_settings) == [m.version for m in available()]
    second = run_cli(fresh_settings, "migrate")
    assert (second.code, second.out.strip()) == (0, "database is up to date")
    assert await _applied(fresh_settings) == [m.version for m in available()]


async def test_two_concurrent_migrates_on_a_fresh_database_both_succeed(fresh_settings: Settings) -> None:
    env = settings_env(fresh_settings)
    procs = [
        await asyncio.create_subprocess_exec(
            str(PANELFLOW), "migrate", cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = await asyncio.gather(*(p.communicate() for p in procs))
    assert [p.returncode for p in procs] == [0, 0], results
    assert await _applied(fresh_settings) == [m.version for m in available()]


def test_ensure_services_is_quiet_and_quick_when_all_run(settings: Settings) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [str(ROOT / "scripts" / "ensure-services.sh")],
        cwd=ROOT, env=settings_env(settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert time.monotonic() - started < 15


def test_ensure_services_says_exactly_what_is_missing(settings: Settings, tmp_path: Path) -> None:
    # Nothing listens on port 1; with the server tools off PATH, installing and Docker disabled and a dry run,
    # the script can only explain. (It never touches the machine's running services here.)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "id", "awk", "sort", "tail", "ls", "mktemp", "cat", "sleep", "timeout", "dirname"):
        for folder in ("/usr/bin", "/bin"):
            if os.path.exists(f"{folder}/{tool}"):
                (bin_dir / tool).symlink_to(f"{folder}/{tool}")
                break
    env = settings_env(settings, database_url="postgresql://postgres@127.0.0.1:1/panelflow")
    env.update(
        PATH=str(bin_dir),
        PANELFLOW_SETUP_NO_INSTALL="1",
        PANELFLOW_SETUP_NO_DOCKER="1",
        PANELFLOW_SETUP_DRY_RUN="1",
    )
    proc = subprocess.run(
        [str(ROOT / "scripts" / "ensure-services.sh")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "missing: postgres " in proc.stderr
    assert "rabbitmq" not in proc.stderr.split("missing:")[1].splitlines()[0]
    assert "apt-get install -y postgresql" in proc.stderr
    assert "Traceback" not in proc.stderr
