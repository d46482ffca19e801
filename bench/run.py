"""The ingress benchmark: panelflow `add` against the ceiling of a bare aiohttp app, driven by wrk.

`.venv/bin/python -m bench.run [--duration 10] [--connections 64] [--threads 2] [--accounts 200] [--api-processes N]`

In one run, with all rate limits lifted and the outbox relay on: (1) the ceiling app, (2) `add` with unique
request_ids rotated over many accounts' keys, (3) the same on one account. After each panelflow run it checks
that the orders in the database match the successful responses and that every ledger sums to its balance.
Prints one JSON object and writes it to bench/results/<timestamp>.json. Installs nothing; measure on a quiet
machine (anything else running on the cores shows up in the numbers). `--api-processes N` adds (2) and (3)
against N api processes sharing the port (opt-in for operators), as `multi_process`: the headline ratios stay
the single process's, and the ceiling stays one process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from shared.auth.keys import generate_key, hash_key, key_prefix
from shared.db import accounts, catalog, keys, outbox
from shared.db.migrate import migrate
from shared.db.pool import connect, drop_database, ensure_database, with_database
from shared.logging import configure_logging
from shared.messaging import topology
from shared.messaging.connection import connect as connect_amqp
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
DATABASE = "panelflow_bench"
BALANCE = Decimal("1000000000")


@dataclass(frozen=True)
class Options:
    duration: int
    connections: int
    threads: int
    accounts: int
    warmup: int
    keep_db: bool
    relay: bool
    api_processes: int


def parse_args() -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (32+; default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--accounts", type=int, default=200, help="accounts of the many-accounts run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load before each run")
    parser.add_argument("--keep-db", action="store_true", help=f"keep the {DATABASE} database afterwards")
    parser.add_argument(
        "--no-relay",
        action="store_true",
        help="diagnosis only: run the api without the outbox relay (not the benchmark)",
    )
    parser.add_argument(
        "--api-processes",
        type=int,
        default=0,
        help="also run (2) and (3) against this many api processes (PANELFLOW_API_PROCESSES), reported apart",
    )
    a = parser.parse_args()
    return Options(
        a.duration, a.connections, a.threads, a.accounts, a.warmup, a.keep_db, not a.no_relay, a.api_processes
    )


# --- processes ---------------------------------------------------------------------------------------------


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


def api_env(settings: Settings, port: int, relay: bool) -> dict[str, str]:
    env = dict(os.environ)  # PANELFLOW_* overrides given to the benchmark reach the api as well
    env.update(
        PANELFLOW_DATABASE_URL=settings.database_url,
        PANELFLOW_AMQP_PREFIX=settings.amqp_prefix,
        PANELFLOW_API_HOST="127.0.0.1",
        PANELFLOW_API_PORT=str(port),
        PANELFLOW_RATE_LIMITS_ENABLED="false",
        PANELFLOW_RELAY_ENABLED="true" if relay else "false",
        PANELFLOW_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    return env


# --- wrk -----------------------------------------------------------------------------------------------------


def wrk(url: str, opts: Options, keys_file: Path, service_id: int, duration: int) -> dict[str, Any]:
    env = dict(os.environ, BENCH_KEYS=str(keys_file), BENCH_SERVICE=str(service_id))
    cmd = [
        "wrk", f"-t{opts.threads}", f"-c{opts.connections}", f"-d{duration}s", "--latency", "--timeout", "10s",
        "-s", str(BENCH / "add.lua"), url,
    ]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            raw: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            return raw
    raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{out}")


# --- CPU accounting ------------------------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of one process and of its children that exited (Postgres backends, api children), 0 when
    it is gone: utime + stime + cutime + cstime."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return sum(int(f) for f in fields[11:15]) / _CLOCK_TICKS


def _process_table() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command name) of every process."""
    table = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                head, tail = (entry / "stat").read_text().rsplit(")", 1)
                table.append((int(entry.name), int(tail.split()[1]), head.split("(", 1)[1]))
    return table


def cpu_snapshot(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process tree (a root pid and its descendants: the api's children
    with PANELFLOW_API_PROCESSES), by Postgres and by RabbitMQ. On a shared machine the Postgres and RabbitMQ
    figures include whatever else uses those servers meanwhile."""
    table = _process_table()
    owner: dict[int, str] = {pid: name for name, pid in roots.items()}
    for _ in range(3):  # children and theirs
        owner |= {pid: owner[parent] for pid, parent, _ in table if parent in owner and pid not in owner}
    totals = dict.fromkeys([*roots, "postgres", "rabbitmq"], 0.0)
    for pid, _, name in table:
        group = (
            owner.get(pid) if pid in owner
            else "postgres" if name.startswith("postgres")
            else "rabbitmq" if name in ("beam.smp", "erl_child_setup")
            else None
        )  # fmt: skip
        if group is not None:
            totals[group] += _cpu_seconds(pid)
    return totals


def cpu_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """Microseconds of CPU per successful request, by process group, over one measured run."""
    return {group: round((after[group] - before[group]) / max(requests, 1) * 1e6, 1) for group in before}


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    errors = raw["errors"]
    ok = raw["requests"] - errors["status"]
    seconds = raw["duration_us"] / 1e6
    return {
        "orders_per_s": round(ok / seconds, 1),
        "p50_ms": round(raw["latency_us"]["p50"] / 1000, 2),
        "p99_ms": round(raw["latency_us"]["p99"] / 1000, 2),
        "successes": ok,
        "responses": raw["requests"],
        "errors": errors,
        "load_avg_1m_after": os.getloadavg()[0],
    }


# --- database ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    service_id: int
    many_keys: list[str]
    one_key: str


async def seed(conn: asyncpg.Connection, n_accounts: int) -> Seed:
    service_id = await catalog.add_service(
        conn, name="Bench followers", type="Default", category="Bench", rate=Decimal("0.9"),
        min_quantity=10, max_quantity=100_000,
    )  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    made: list[str] = []
    for n in range(n_accounts + 1):
        account_id = await accounts.create_account(conn, email=f"bench-{tag}-{n}@example.test", balance=BALANCE)
        key = generate_key()
        await keys.insert_key(
            conn, account_id=account_id, key_hash=hash_key(key), prefix=key_prefix(key), scopes=["read", "orders"]
        )
        made.append(key)
    return Seed(service_id, made[:-1], made[-1])


async def order_count(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM orders")
    return count


async def check(conn: asyncpg.Connection, before: int, result: dict[str, Any], connections: int) -> None:
    """Orders placed == successful responses (plus at most the requests in flight when wrk stopped)."""
    # The api may still be committing the last batches when wrk stops: let them land.
    await asyncio.sleep(1.0)
    placed = await order_count(conn) - before
    mismatches = await accounts.ledger_mismatches(conn)
    result["orders_in_db"] = placed
    result["ledger_ok"] = not mismatches
    # With the relay on, its lag 1 s after the load stopped: a relay that cannot keep up shows here.
    result["outbox_unpublished_after_1s"] = await outbox.count_unpublished(conn)
    result["orders_match"] = result["successes"] <= placed <= result["successes"] + connections
    if mismatches or not result["orders_match"]:
        print(
            f"VERIFICATION FAILED: {placed} orders for {result['successes']} successes, {mismatches[:5]}",
            file=sys.stderr,
        )


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


# --- the run -------------------------------------------------------------------------------------------------


async def bench(opts: Options) -> dict[str, Any]:
    base = Settings()
    settings = base.model_copy(
        update={
            "env": "development",
            "database_url": with_database(base.database_url, DATABASE),
            "amqp_prefix": f"bench{uuid.uuid4().hex[:8]}",
        }
    )
    # Our own log lines (migrations) go to stderr and only when they matter: stdout is the one JSON object.
    configure_logging(settings.model_copy(update={"log_level": "WARNING"}), "bench")
    await drop_database(settings.database_url)
    await ensure_database(settings.database_url)
    conn = await connect(settings)
    logs = Path(tempfile.mkdtemp(prefix="panelflow-bench-"))
    try:
        await migrate(conn)
        seeded = await seed(conn, opts.accounts)
        many_file, one_file = logs / "many.keys", logs / "one.keys"
        many_file.write_text("\n".join(seeded.many_keys) + "\n")
        one_file.write_text(seeded.one_key + "\n")
        pg_version = await conn.fetchval("SHOW server_version")

        def load(port: int, keys_file: Path, duration: int) -> dict[str, Any]:
            return wrk(f"http://127.0.0.1:{port}/api/v2", opts, keys_file, seeded.service_id, duration)

        port = free_port()
        ceiling_app = Child("bench.ceiling_app", dict(os.environ), logs / "ceiling.log", ["--port", str(port)])
        try:
            await ceiling_app.wait_http(f"http://127.0.0.1:{port}/healthz")
            if opts.warmup:
                await asyncio.to_thread(load, port, many_file, opts.warmup)
            before = cpu_snapshot({"ours": ceiling_app.proc.pid})
            ceiling = summarise(await asyncio.to_thread(load, port, many_file, opts.duration))
            ceiling["cpu_us_per_request"] = cpu_per_request(
                before, cpu_snapshot({"ours": ceiling_app.proc.pid}), ceiling["successes"]
            )
        finally:
            ceiling_app.stop()

        async def api_runs(processes: int) -> dict[str, dict[str, Any]]:
            port = free_port()
            env = api_env(settings, port, opts.relay) | {"PANELFLOW_API_PROCESSES": str(processes)}
            api = Child("services.api", env, logs / f"api-{processes}.log", [])
            try:
                await api.wait_http(f"http://127.0.0.1:{port}/healthz")
                runs: dict[str, dict[str, Any]] = {}
                for name, keys_file in (("many_accounts", many_file), ("one_account", one_file)):
                    if opts.warmup:
                        await asyncio.to_thread(load, port, keys_file, opts.warmup)
                        await asyncio.sleep(1.0)  # let the warm-up's last orders land before counting
                    before = await order_count(conn)
                    before_cpu = cpu_snapshot({"ours": api.proc.pid})
                    runs[name] = summarise(await asyncio.to_thread(load, port, keys_file, opts.duration))
                    # Where the machine's CPU went per order (api incl. its relay, Postgres, RabbitMQ).
                    runs[name]["cpu_us_per_request"] = cpu_per_request(
                        before_cpu, cpu_snapshot({"ours": api.proc.pid}), runs[name]["successes"]
                    )
                    await check(conn, before, runs[name], opts.connections)
                return runs
            finally:
                api.stop()

        runs = await api_runs(1)
        multi = await api_runs(opts.api_processes) if opts.api_processes > 1 else None
    finally:
        await conn.close()
        await delete_amqp_names(settings)
        if not opts.keep_db:
            await drop_database(settings.database_url)

    top = ceiling["orders_per_s"] or 1.0
    extra: dict[str, Any] = {}
    if multi is not None:
        # Not the headline: several api processes against the one-process ceiling, on the same cores.
        extra["multi_process"] = {
            "api_processes": opts.api_processes,
            "many_accounts": multi["many_accounts"],
            "one_account": multi["one_account"],
            "ratio_many": round(multi["many_accounts"]["orders_per_s"] / top, 3),
            "ratio_one": round(multi["one_account"]["orders_per_s"] / top, 3),
        }
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "ceiling": ceiling,
        "many_accounts": runs["many_accounts"],
        "one_account": runs["one_account"],
        "ratio_many": round(runs["many_accounts"]["orders_per_s"] / top, 3),
        "ratio_one": round(runs["one_account"]["orders_per_s"] / top, 3),
        "config": {
            "duration_s": opts.duration,
            "connections": opts.connections,
            "wrk_threads": opts.threads,
            "accounts": opts.accounts,
            "relay": opts.relay,
            "placement_batch_max": settings.placement_batch_max,
            "placement_concurrency": settings.placement_concurrency,
            "db_pool_max": settings.db_pool_max,
        },
        **extra,
        "machine": machine_info(pg_version),
        "logs": str(logs),
    }


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    opts = parse_args()
    result = asyncio.run(bench(opts))
    text = json.dumps(result, indent=2)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"{stamp}.json").write_text(text + "\n")
    checked = [result[r] for r in ("many_accounts", "one_account")]
    if "multi_process" in result:
        checked += [result["multi_process"][r] for r in ("many_accounts", "one_account")]
    ok = all(r["ledger_ok"] and r["orders_match"] for r in checked)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
