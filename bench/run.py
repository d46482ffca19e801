"""The ingress benchmark: panelflow `add` and `status` against the ceiling of a bare aiohttp app, and `add`
against the peer (the one-transaction-per-request design of a typical panel), driven by wrk.

`.venv/bin/python -m bench.run [--duration 10] [--connections 64] [--threads 2] [--accounts 200] [--api-processes N]`

In one run, with all rate limits lifted and the outbox relay on: (1) the ceiling app, for `add` and for
`status` with 100 ids; (2) `add` with unique request_ids rotated over many accounts' keys, (3) the same on one
account, (4) `status` polling, 100 of an account's orders per call; (5) and (6) = (2) and (3) against the peer
(`bench/peer_app.py`). After each `add` run it checks that the orders in the database match the successful
responses and that every ledger sums to its balance. Every run reports the CPU microseconds per unit of every
process group and their peak RSS; panelflow's `add` runs also the placement batch sizes (the api's
`panelflow_placement_batch_size` histogram over the run). Prints one JSON object and writes it to
bench/results/<timestamp>.json. Installs nothing; measure on a quiet machine (anything else running on the
cores shows up in the numbers, and as `other` CPU). `--api-processes N` adds (2) and (3) against N api
processes sharing the port (opt-in for operators), as `multi_process`: the headline ratios stay the single
process's, and the ceiling stays one process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from bench import histograms
from bench.harness import (
    BENCH,
    RESULTS,
    Child,
    Probe,
    delete_amqp_names,
    free_port,
    machine_info,
    measured,
    summarise,
    wrk,
)
from shared.auth.keys import generate_key, hash_key, key_prefix
from shared.db import accounts, catalog, keys, outbox
from shared.db.migrate import migrate
from shared.db.pool import connect, drop_database, ensure_database, with_database
from shared.logging import configure_logging
from shared.settings import Settings

DATABASE = "panelflow_bench"
BALANCE = Decimal("1000000000")
STATUS_IDS = 100  # ids per `status` call (the API's maximum)
BATCH_HISTOGRAM = "panelflow_placement_batch_size"


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
    peer: bool = True


def parse_args(argv: list[str] | None = None) -> Options:
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
    parser.add_argument("--no-peer", action="store_true", help="leave out the peer (runs 5 and 6)")
    parser.add_argument(
        "--api-processes",
        type=int,
        default=0,
        help="also run (2) and (3) against this many api processes (PANELFLOW_API_PROCESSES), reported apart",
    )
    a = parser.parse_args(argv)
    return Options(
        a.duration, a.connections, a.threads, a.accounts, a.warmup, a.keep_db, not a.no_relay, a.api_processes,
        not a.no_peer,
    )  # fmt: skip


def api_env(settings: Settings, port: int, relay: bool, ops_port: int) -> dict[str, str]:
    env = dict(os.environ)  # PANELFLOW_* overrides given to the benchmark reach the api as well
    env.update(
        PANELFLOW_DATABASE_URL=settings.database_url,
        PANELFLOW_AMQP_PREFIX=settings.amqp_prefix,
        PANELFLOW_API_HOST="127.0.0.1",
        PANELFLOW_API_PORT=str(port),
        PANELFLOW_METRICS_PORT_API=str(ops_port),
        PANELFLOW_RATE_LIMITS_ENABLED="false",
        PANELFLOW_RELAY_ENABLED="true" if relay else "false",
        PANELFLOW_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    return env


# --- database ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    service_id: int
    many_keys: list[str]
    one_key: str
    key_of_account: dict[int, str]


async def seed(conn: asyncpg.Connection, n_accounts: int) -> Seed:
    service_id = await catalog.add_service(
        conn, name="Bench followers", type="Default", category="Bench", rate=Decimal("0.9"),
        min_quantity=10, max_quantity=100_000,
    )  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    made: dict[int, str] = {}
    for n in range(n_accounts + 1):
        account_id = await accounts.create_account(conn, email=f"bench-{tag}-{n}@example.test", balance=BALANCE)
        key = generate_key()
        await keys.insert_key(
            conn, account_id=account_id, key_hash=hash_key(key), prefix=key_prefix(key), scopes=["read", "orders"]
        )
        made[account_id] = key
    all_keys = list(made.values())
    return Seed(service_id, all_keys[:-1], all_keys[-1], made)


async def order_count(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM orders")
    return count


async def settled_count(conn: asyncpg.Connection, timeout: float = 15.0) -> int:
    """The order count once it stopped moving: the requests still in flight when wrk stopped have landed (at
    least 1 s; a slow server, e.g. the peer on a busy machine, may take longer)."""
    await asyncio.sleep(1.0)
    count = await order_count(conn)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        now = await order_count(conn)
        if now == count:
            break
        count = now
    return count


async def check(conn: asyncpg.Connection, before: int, result: dict[str, Any], connections: int) -> None:
    """Orders placed == successful responses (plus at most the requests in flight when wrk stopped)."""
    placed = await settled_count(conn) - before
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


async def status_lines(conn: asyncpg.Connection, key_of_account: dict[int, str], path: Path) -> int:
    """Write `<key> <100 ids>` lines for `status.lua`: consecutive runs of 100 orders of one account, at most
    20 per account, from every account with at least 100 orders. Returns the number of lines."""
    rows = await conn.fetch(
        """
        SELECT account_id, array_agg(id ORDER BY id) AS ids FROM orders
        GROUP BY account_id HAVING count(*) >= $1
        """,
        STATUS_IDS,
    )
    lines = []
    for row in rows:
        ids = row["ids"]
        for start in range(0, min(len(ids), 20 * STATUS_IDS) - STATUS_IDS + 1, STATUS_IDS):
            chunk = ",".join(str(i) for i in ids[start : start + STATUS_IDS])
            lines.append(f"{key_of_account[row['account_id']]} {chunk}")
    await asyncio.to_thread(path.write_text, "\n".join(lines) + "\n")
    return len(lines)


# --- the run -------------------------------------------------------------------------------------------------


class Load:
    """wrk against one url with the benchmark's options."""

    def __init__(self, opts: Options, service_id: int) -> None:
        self.opts = opts
        self.service_id = service_id

    async def add(self, port: int, keys_file: Path, duration: int) -> dict[str, Any]:
        env = {"BENCH_KEYS": str(keys_file), "BENCH_SERVICE": str(self.service_id)}
        return await self._wrk(port, BENCH / "add.lua", env, duration)

    async def status(self, port: int, lines_file: Path, duration: int) -> dict[str, Any]:
        return await self._wrk(port, BENCH / "status.lua", {"BENCH_STATUS": str(lines_file)}, duration)

    async def _wrk(self, port: int, script: Path, env: dict[str, str], duration: int) -> dict[str, Any]:
        o = self.opts
        url = f"http://127.0.0.1:{port}/api/v2"
        return await asyncio.to_thread(
            wrk, url, script, env, threads=o.threads, connections=o.connections, duration=duration
        )


async def bench(opts: Options, probe: Probe | None = None) -> dict[str, Any]:
    """The whole ingress benchmark; `probe` looks closer at each measured run (bench.profile)."""
    base = Settings()
    settings = base.model_copy(
        update={
            "env": "development",
            "database_url": with_database(base.database_url, DATABASE),
            "amqp_prefix": f"bench{uuid.uuid4().hex[:8]}",
        }
    )
    peer_settings = settings.model_copy(update={"amqp_prefix": settings.amqp_prefix + "peer"})
    # Our own log lines (migrations) go to stderr and only when they matter: stdout is the one JSON object.
    configure_logging(settings.model_copy(update={"log_level": "WARNING"}), "bench")
    await drop_database(settings.database_url)
    await ensure_database(settings.database_url)
    conn = await connect(settings)
    logs = Path(tempfile.mkdtemp(prefix="panelflow-bench-"))
    result: dict[str, Any] = {}
    try:
        await migrate(conn)
        seeded = await seed(conn, opts.accounts)
        many_file, one_file, status_file = logs / "many.keys", logs / "one.keys", logs / "status.lines"
        many_file.write_text("\n".join(seeded.many_keys) + "\n")
        one_file.write_text(seeded.one_key + "\n")
        pg_version = await conn.fetchval("SHOW server_version")
        load = Load(opts, seeded.service_id)
        # The ceiling's `status` runs on the ids of the first many-accounts keys (it reads none of them).
        ceiling_lines = logs / "ceiling.lines"
        ids = ",".join(str(i) for i in range(1, STATUS_IDS + 1))
        ceiling_lines.write_text("".join(f"{key} {ids}\n" for key in seeded.many_keys[:20]))

        port = free_port()
        ceiling_app = Child("bench.ceiling_app", dict(os.environ), logs / "ceiling.log", ["--port", str(port)])
        try:
            await ceiling_app.wait_http(f"http://127.0.0.1:{port}/healthz")
            roots = {"ours": ceiling_app.proc.pid}
            if opts.warmup:
                await load.add(port, many_file, opts.warmup)
            async with measured("ceiling", roots, database=None, probe=probe) as window:
                ceiling = summarise(await load.add(port, many_file, opts.duration))
                window.units(ceiling["successes"])
            ceiling |= window.result
            async with measured("ceiling_status", roots, database=None, probe=probe, unit="id") as window:
                ceiling_status = summarise(await load.status(port, ceiling_lines, opts.duration), "calls_per_s")
                ceiling_status["ids_per_s"] = round(ceiling_status["calls_per_s"] * STATUS_IDS, 1)
                window.units(ceiling_status["successes"] * STATUS_IDS)
            ceiling_status |= window.result
        finally:
            ceiling_app.stop()

        child_port: dict[Child, int] = {}

        async def add_run(name: str, child: Child, keys_file: Path, ops_port: int | None) -> dict[str, Any]:
            roots = {"ours": child.proc.pid} if ops_port is not None else {"peer": child.proc.pid}
            if opts.warmup:
                await load.add(child_port[child], keys_file, opts.warmup)
            before = await settled_count(conn)  # the warm-up's last orders landed
            metrics_url = f"http://127.0.0.1:{ops_port}/metrics"
            batches_before = await histograms.scrape(metrics_url, BATCH_HISTOGRAM) if ops_port else None
            async with measured(name, roots, database=DATABASE, probe=probe) as window:
                run = summarise(await load.add(child_port[child], keys_file, opts.duration))
                window.units(run["successes"])
            run |= window.result
            if batches_before is not None:
                after = await histograms.scrape(metrics_url, BATCH_HISTOGRAM)
                run["placement_batches"] = histograms.distribution(batches_before, after)
            await check(conn, before, run, opts.connections)
            return run

        async def api_runs(processes: int) -> dict[str, dict[str, Any]]:
            port, ops_port = free_port(), free_port()
            env = api_env(settings, port, opts.relay, ops_port) | {"PANELFLOW_API_PROCESSES": str(processes)}
            api = Child("services.api", env, logs / f"api-{processes}.log", [])
            child_port[api] = port
            try:
                await api.wait_http(f"http://127.0.0.1:{port}/healthz")
                # With several processes /metrics sums them all (shared/kit/multiprocess_metrics.py).
                runs = {
                    "many_accounts": await add_run("add_many", api, many_file, ops_port),
                    "one_account": await add_run("add_one", api, one_file, ops_port),
                }
                if processes == 1:
                    lines = await status_lines(conn, seeded.key_of_account, status_file)
                    if opts.warmup:
                        await load.status(port, status_file, opts.warmup)
                    async with measured("status", {"ours": api.proc.pid}, database=DATABASE, probe=probe,
                                        unit="id") as window:  # fmt: skip
                        status = summarise(await load.status(port, status_file, opts.duration), "calls_per_s")
                        status["ids_per_s"] = round(status["calls_per_s"] * STATUS_IDS, 1)
                        status["ids_per_call"] = STATUS_IDS
                        status["distinct_calls"] = lines
                        window.units(status["successes"] * STATUS_IDS)
                    runs["status"] = status | window.result
                return runs
            finally:
                api.stop()

        async def peer_runs() -> dict[str, dict[str, Any]]:
            port = free_port()
            env = api_env(peer_settings, port, False, free_port())
            peer = Child("bench.peer_app", env, logs / "peer.log", ["--port", str(port)])
            child_port[peer] = port
            try:
                await peer.wait_http(f"http://127.0.0.1:{port}/healthz")
                return {
                    "many_accounts": await add_run("peer_many", peer, many_file, None),
                    "one_account": await add_run("peer_one", peer, one_file, None),
                }
            finally:
                peer.stop()

        runs = await api_runs(1)
        multi = await api_runs(opts.api_processes) if opts.api_processes > 1 else None
        peer = await peer_runs() if opts.peer else None
    finally:
        await conn.close()
        await delete_amqp_names(settings)
        await delete_amqp_names(peer_settings)
        if not opts.keep_db:
            await drop_database(settings.database_url)

    top = ceiling["orders_per_s"] or 1.0
    if peer is not None:
        result["peer"] = {
            **peer,
            "ratio_many": round(peer["many_accounts"]["orders_per_s"] / top, 3),
            "ratio_one": round(peer["one_account"]["orders_per_s"] / top, 3),
            # Our design's orders/s over the peer's, same run, same ceiling.
            "ours_over_peer_many": _over(runs["many_accounts"], peer["many_accounts"]),
            "ours_over_peer_one": _over(runs["one_account"], peer["one_account"]),
        }
    if multi is not None:
        # Not the headline: several api processes against the one-process ceiling, on the same cores.
        result["multi_process"] = {
            "api_processes": opts.api_processes,
            "many_accounts": multi["many_accounts"],
            "one_account": multi["one_account"],
            "ratio_many": round(multi["many_accounts"]["orders_per_s"] / top, 3),
            "ratio_one": round(multi["one_account"]["orders_per_s"] / top, 3),
        }
    status = runs["status"]
    status["ratio_calls_to_ceiling"] = round(status["calls_per_s"] / (ceiling_status["calls_per_s"] or 1.0), 3)
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "ceiling": ceiling,
        "many_accounts": runs["many_accounts"],
        "one_account": runs["one_account"],
        "ratio_many": round(runs["many_accounts"]["orders_per_s"] / top, 3),
        "ratio_one": round(runs["one_account"]["orders_per_s"] / top, 3),
        "ceiling_status": ceiling_status,
        "status": status,
        **result,
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
        "machine": machine_info(pg_version),
        "logs": str(logs),
    }


def _over(ours: dict[str, Any], theirs: dict[str, Any]) -> float:
    return round(ours["orders_per_s"] / (theirs["orders_per_s"] or 1.0), 2)


def record(result: dict[str, Any], prefix: str = "") -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{prefix}{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def verified(result: dict[str, Any]) -> bool:
    checked = [result[r] for r in ("many_accounts", "one_account")]
    for extra in ("multi_process", "peer"):
        if extra in result:
            checked += [result[extra][r] for r in ("many_accounts", "one_account")]
    return all(r["ledger_ok"] and r["orders_match"] for r in checked)


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    opts = parse_args()
    result = asyncio.run(bench(opts))
    print(json.dumps(result, indent=2))
    record(result)
    sys.exit(0 if verified(result) else 1)


if __name__ == "__main__":
    main()
