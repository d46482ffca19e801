"""Start panelflow's processes the way a user does (`python -m services.<name>`) and stop them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretBytes, SecretStr

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings, **overrides: Any) -> dict[str, str]:
    """The environment that makes a child process build exactly these settings (plus overrides)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANELFLOW_")}
    values = settings.model_dump(mode="json")
    # The json dump masks secrets as '**********': children need the real values, whatever the field.
    for name in type(settings).model_fields:
        values[name] = _reveal(getattr(settings, name), values[name])
    values.update({name: _reveal(value, value) for name, value in overrides.items()})
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, dict | list):
            text = json.dumps(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[f"PANELFLOW_{name.upper()}"] = text
    env["PANELFLOW_LOG_FORMAT"] = "json"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _reveal(value: Any, dumped: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, SecretBytes):
        return value.get_secret_value().decode()
    return dumped


# Every child a test started: the session stops what is left, so a test failing before it stopped its own
# children leaves nothing running after the run.
_STARTED: list[ManagedProcess] = []


def stop_leftovers() -> None:
    for process in _STARTED:
        process.stop(timeout=10)
    _STARTED.clear()


class ManagedProcess:
    """One child process with its log captured to a file."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path, args: list[str] | None = None) -> None:
        self.module = module
        self.env = env
        self.log_path = log_path
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        _STARTED.append(self)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    async def wait_http(self, url: str, timeout: float = 90.0) -> None:
        """Until `url` answers 200. A process that exits fails at once; the long default is for a loaded machine
        (parallel test workers, other runs), where starting a Python process with its imports can take tens of
        seconds."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise RuntimeError(f"{self.module} exited early:\n{self.log_text()[-4000:]}")
                try:
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{url} did not answer within {timeout}s:\n{self.log_text()[-4000:]}")


class ApiProcess(ManagedProcess):
    def __init__(self, settings: Settings, log_path: Path, **overrides: Any) -> None:
        self.port = free_port()
        overrides.setdefault("api_port", self.port)
        self.port = int(overrides["api_port"])
        overrides.setdefault("metrics_port_api", free_port())
        self.ops_port = int(overrides["metrics_port_api"])
        super().__init__("services.api", settings_env(settings, **overrides), log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Where this api serves its Prometheus metrics: its ops port, not the public one."""
        return f"http://127.0.0.1:{self.ops_port}/metrics"

    async def started(self) -> ApiProcess:
        self.start()
        await self.wait_http(self.url + "/healthz")
        return self
