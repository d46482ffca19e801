"""What the benchmarks share: their child processes, wrk, the measured window (CPU per unit, peak RSS, an
optional probe such as `bench.profile`'s), the machine's description and the clean-up of broker names."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from bench.procstats import RssSampler, cpu_per_unit, cpu_snapshot, kernel_seconds, kernel_share, listener
from shared.messaging import topology
from shared.messaging.connection import connect as connect_amqp
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Child:
    """A `python -m module` child with its output in a log file."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path, args: list[str]) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.module = module
        self.log_path = log_path

    async def wait_http(self, url: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.module} exited early; see {self.log_path}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{url} did not answer within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


async def wait_log(child: Child, needle: str, timeout: float = 30.0) -> None:
    """Wait until `child` logged `needle` (its ready line); fail fast when it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.module} exited early; see {child.log_path}")
        if needle in child.log_path.read_text(errors="replace"):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{child.module} not ready; see {child.log_path}")


# --- wrk -----------------------------------------------------------------------------------------------------


def wrk(
    url: str, script: Path, env: dict[str, str], *, threads: int, connections: int, duration: int
) -> dict[str, Any]:
    """Run wrk with a script of ours that prints `BENCH_JSON {...}` in done(); that object."""
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s",
        "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(cmd, env=dict(os.environ, **env), capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            raw: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            return raw
    raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{out}")


def summarise(raw: dict[str, Any], per_second: str = "orders_per_s") -> dict[str, Any]:
    errors = raw["errors"]
    ok = raw["requests"] - errors["status"]
    seconds = raw["duration_us"] / 1e6
    return {
        per_second: round(ok / seconds, 1),
        "p50_ms": round(raw["latency_us"]["p50"] / 1000, 2),
        "p99_ms": round(raw["latency_us"]["p99"] / 1000, 2),
        "successes": ok,
        "responses": raw["requests"],
        "errors": errors,
        "load_avg_1m_after": os.getloadavg()[0],
    }


# --- the measured window -------------------------------------------------------------------------------------


class Probe(Protocol):
    """Something that looks closer at a measured window (bench.profile: flame graphs, pg_stat_statements)."""

    async def begin(self, phase: str, pids: dict[str, int], database: str | None) -> None: ...

    async def end(self, phase: str, units: int) -> dict[str, Any]: ...


class Window:
    """One measured window: CPU per unit and peak RSS of every process group, and what a probe found."""

    def __init__(self, roots: dict[str, int], database: str | None) -> None:
        self.roots = roots
        self.database = database
        self.result: dict[str, Any] = {}
        self._units = 0

    def units(self, n: int) -> None:
        """How many units (requests, order ids, deliveries) the window's CPU is divided by."""
        self._units = n


def local_servers() -> dict[str, int]:
    """The root pids of the Postgres and RabbitMQ of the settings (PANELFLOW_DATABASE_URL, _AMQP_URL) when they
    run on this machine: only they count as "postgres" and "rabbitmq" in the CPU figures."""
    settings = Settings()
    found = {}
    for server, url in (("postgres", settings.database_url), ("rabbitmq", settings.amqp_url)):
        parts = urlsplit(url)
        if parts.hostname in ("127.0.0.1", "localhost", "::1"):
            pid = listener(parts.port or (5432 if server == "postgres" else 5672), server)
            if pid is not None:
                found[server] = pid
    return found


@contextlib.asynccontextmanager
async def measured(
    phase: str, roots: dict[str, int], *, database: str | None, probe: Probe | None = None, unit: str = "request"
) -> AsyncIterator[Window]:
    """Measure what runs inside: on exit the window's `result` holds `cpu_us_per_<unit>` (by process group:
    the named roots with their children, Postgres, RabbitMQ, wrk, `other`), the share of each named root's CPU
    spent in the kernel, `rss_peak_mb` and the probe's findings."""
    window = Window(roots, database)
    servers = local_servers()
    sampler = RssSampler(roots, database, rabbitmq=servers.get("rabbitmq"))
    sampler.start()
    if probe is not None:
        await probe.begin(phase, roots, database)
    before, split = cpu_snapshot(roots, servers), kernel_seconds(roots)
    try:
        yield window
    finally:
        after = cpu_snapshot(roots, servers)
        window.result["kernel_share"] = kernel_share(split, kernel_seconds(roots))
        found = await probe.end(phase, window._units) if probe is not None else None
        window.result[f"cpu_us_per_{unit}"] = cpu_per_unit(before, after, window._units)
        window.result["rss_peak_mb"] = await sampler.stop()
        if found:
            window.result["probe"] = found


# --- the rest ------------------------------------------------------------------------------------------------


def machine_info(pg_version: str) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk_version = (
        subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()
        if shutil.which("wrk")
        else []
    )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgres": pg_version,
        "wrk": wrk_version[0] if wrk_version else "",
        "commit": commit.stdout.strip(),
    }


async def delete_amqp_names(settings: Settings) -> None:
    try:
        connection = await connect_amqp(settings.amqp_url, timeout=10)
    except Exception as exc:  # the benchmark's numbers stand without it; say what is left behind
        print(f"could not remove the bench's RabbitMQ queues ({settings.amqp_prefix}.*): {exc}", file=sys.stderr)
        return
    async with connection:
        for name in topology.all_queue_names(settings):
            with contextlib.suppress(Exception):
                await (await connection.channel()).queue_delete(name)
        for name in topology.all_exchange_names(settings):
            with contextlib.suppress(Exception):
                await (await connection.channel()).exchange_delete(name)
