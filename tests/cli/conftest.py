"""Run the installed `panelflow` command (and the set-up scripts) as a user does: a subprocess, env from settings."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.db.pool import drop_database, with_database
from shared.settings import Settings
from tests.support.processes import ROOT, settings_env

PANELFLOW = Path(sys.executable).parent / "panelflow"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def assert_user_error(self, *, code: int = 1, says: str = "") -> None:
        """A user mistake: non-zero exit, exactly one line on stderr, no traceback, nothing on stdout."""
        assert self.code == code, self
        assert "Traceback" not in self.err, self.err
        assert len(self.err.strip().splitlines()) == 1, self.err
        assert self.out == "", self.out
        assert says.lower() in self.err.lower(), self.err


Cli = Callable[..., Result]


def run_cli(settings: Settings, *args: str, timeout: float = 60, stdin: str | None = None, **env: str) -> Result:
    proc = subprocess.run(
        [str(PANELFLOW), *args],
        input=stdin,
        cwd=ROOT,
        env={**settings_env(settings), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(settings: Settings) -> Cli:
    """`cli("account", "create", ...)` against the session's test database."""
    return lambda *args, **env: run_cli(settings, *args, **env)


@pytest.fixture
async def fresh_settings(settings: Settings) -> AsyncIterator[Settings]:
    """Settings naming a database that does not exist yet; dropped afterwards."""
    fresh = settings.model_copy(
        update={"database_url": with_database(settings.database_url, f"panelflow_test_cli_{uuid.uuid4().hex[:10]}")}
    )
    yield fresh
    await drop_database(fresh.database_url)
