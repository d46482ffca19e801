"""`panelflow migrate` on fresh and migrated databases, and the set-up script's quiet path."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest

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


def _path_without_tools(tmp_path: Path, tools: tuple[str, ...]) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        for folder in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
            if os.path.exists(f"{folder}/{tool}"):
                (bin_dir / tool).symlink_to(f"{folder}/{tool}")
                break
    return str(bin_dir)


TEST_TOOLS = ROOT / "scripts" / "ensure-test-tools.sh"
SHELL_TOOLS = ("bash", "env", "id", "awk", "dirname", "head", "apt-cache", "apt-get")


def test_ensure_test_tools_is_quiet_when_promtool_is_there() -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool missing here: the next test covers that path")
    proc = subprocess.run([str(TEST_TOOLS)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    if shutil.which("kubectl"):
        assert proc.stderr == ""
    else:
        assert proc.stderr.startswith("ensure-test-tools: note: no kubectl"), proc.stderr
        assert len(proc.stderr.splitlines()) == 1


def test_ensure_test_tools_installs_prometheus_without_its_server_or_says_how(tmp_path: Path) -> None:
    if shutil.which("apt-cache") is None:
        pytest.skip("not a Debian-like machine")
    env = {"PATH": _path_without_tools(tmp_path, SHELL_TOOLS), "PANELFLOW_SETUP_DRY_RUN": "1"}
    dry = subprocess.run([str(TEST_TOOLS)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if os.geteuid() == 0:
        assert dry.returncode == 0, dry.stderr
        assert (
            "would run: env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus"
            in (dry.stderr)
        )
        assert "would disable the prometheus service" in dry.stderr
    assert "note: no kubectl" in dry.stderr or dry.returncode != 0
    # Not allowed to install: one clear error saying what to install.
    refused = subprocess.run(
        [str(TEST_TOOLS)], cwd=ROOT, env={**env, "PANELFLOW_SETUP_NO_INSTALL": "1"}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.startswith("ensure-test-tools: ERROR: promtool is missing"), refused.stderr
    assert "apt-get install -y --no-install-recommends prometheus" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
