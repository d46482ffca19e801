"""End-to-end benchmark: orders placed through the api → bought from the simulator (instant mode) by the
worker(s) → polled to Completed. Once with each worker count asked for.

`.venv/bin/python -m bench.e2e [--orders 3000] [--workers 1,2] [--concurrency 64]`; `run_e2e()` is the function
a combined benchmark calls. Reports orders/s end to end (first `add` sent → last order Completed), the
submission latency (accepted → the upstream has it: `submitted_at - created_at`), the completion latency
(accepted → Completed recorded), and the ids per upstream `status` call. Verifies every order was bought
exactly once (the simulator's counters) and the ledger. Prints one JSON object, writes bench/results/e2e-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import RESULTS, Child, Probe, delete_amqp_names, free_port, machine_info, measured, wait_log
from shared.auth.keys import generate_key, hash_key, key_prefix
from shared.catalog.providers import add_provider
from shared.crypto.secretbox import provider_key_box
from shared.db import accounts, catalog, keys
from shared.db.migrate import migrate
from shared.db.pool import connect, drop_database, ensure_database, with_database
from shared.logging import configure_logging
from shared.settings import Settings

DATABASE = "panelflow_bench_e2e"
SIM_KEY = "bench-sim-key"
# Worker tuning for the run (PANELFLOW_* given to the benchmark override these).
WORKER_ENV = {
    "PANELFLOW_WORKER_POLL_MIN_S": "0.5",
    "PANELFLOW_WORKER_POLL_AGE_FACTOR": "0.05",
    "PANELFLOW_WORKER_POLL_IDLE_S": "0.1",
    "PANELFLOW_AMQP_PREFETCH": "256",
}


def _env(settings: Settings, extra: dict[str, str]) -> dict[str, str]:
    env = {**{k: v for k, v in WORKER_ENV.items()}, **os.environ}
    env.update(
        PANELFLOW_DATABASE_URL=settings.database_url,
        PANELFLOW_AMQP_PREFIX=settings.amqp_prefix,
        PANELFLOW_RATE_LIMITS_ENABLED="false",
        # The simulator is a plain-http provider on this machine: let the worker's address guard through to it.
        PANELFLOW_UPSTREAM_ALLOW_HTTP="true",
        PANELFLOW_UPSTREAM_ALLOWED_NETWORKS="127.0.0.1/32",
        PANELFLOW_LOG_FORMAT="json",
        PANELFLOW_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": 0.0, "p99_ms": 0.0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 1), "p99_ms": round(p99 * 1000, 1)}


async def _sim_stats(session: aiohttp.ClientSession, sim_url: str) -> dict[str, Any]:
    async with session.get(sim_url + "/_sim/stats") as resp:
        result: dict[str, Any] = await resp.json()
        return result


async def _place_all(api_url: str, keys_: list[str], service_id: int, n: int, concurrency: int) -> int:
    """`add` n orders with `concurrency` clients; returns the accepted count."""
    counter = iter(range(n))
    accepted = 0
    run = uuid.uuid4().hex[:8]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def client() -> None:
            nonlocal accepted
            for i in counter:
                form = {
                    "key": keys_[i % len(keys_)], "action": "add", "service": str(service_id),
                    "link": f"https://bench.test/{run}/{i}", "quantity": "100", "request_id": f"{run}-{i}",
                }  # fmt: skip
                async with session.post(api_url, data=form) as resp:
                    body = await resp.json()
                if resp.status == 200 and "order" in body:
                    accepted += 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return accepted


async def run_e2e(
    *,
    orders: int = 3000,
    worker_counts: tuple[int, ...] = (1, 2),
    concurrency: int = 64,
    probe: Probe | None = None,
) -> dict[str, Any]:
    """Set up a stack of its own (database, api + relay, simulator, workers), measure, tear it all down.
    `probe` looks closer at each worker count's run (bench.profile)."""
    base = Settings()
    settings = base.model_copy(
        update={
            "env": "development",
            "database_url": with_database(base.database_url, DATABASE),
            "amqp_prefix": f"e2e{uuid.uuid4().hex[:8]}",
        }
    )
    configure_logging(settings.model_copy(update={"log_level": "WARNING"}), "bench")
    await drop_database(settings.database_url)
    await ensure_database(settings.database_url)
    conn = await connect(settings)
    logs = Path(tempfile.mkdtemp(prefix="panelflow-e2e-"))
    children: list[Child] = []
    results: dict[str, Any] = {}
    try:
        await migrate(conn)
        sim_port, api_port = free_port(), free_port()
        sim_url, api_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{api_port}/api/v2"
        provider = await add_provider(
            conn, provider_key_box(settings), name="bench-sim", url=sim_url + "/api/v2", api_key=SIM_KEY
        )
        service_id = await catalog.add_service(
            conn, name="Bench followers", type="Default", rate=Decimal("0.9"), min_quantity=50, max_quantity=10_000,
            provider_id=provider, provider_service_id="1",
        )  # fmt: skip
        keys_ = []
        for n in range(20):
            account_id = await accounts.create_account(
                conn, email=f"e2e-{uuid.uuid4().hex[:8]}-{n}@example.test", balance=Decimal("1000000")
            )
            key = generate_key()
            await keys.insert_key(conn, account_id=account_id, key_hash=hash_key(key), prefix=key_prefix(key),
                                  scopes=["read", "orders"])  # fmt: skip
            keys_.append(key)
        sim = Child("services.provider_sim", _env(settings, {"PANELFLOW_SIM_PORT": str(sim_port),
                    "PANELFLOW_SIM_KEY": SIM_KEY, "PANELFLOW_SIM_INSTANT": "true"}), logs / "sim.log", [])  # fmt: skip
        children.append(sim)
        await sim.wait_http(sim_url + "/healthz")
        api = Child("services.api", _env(settings, {"PANELFLOW_API_PORT": str(api_port)}), logs / "api.log", [])
        children.append(api)
        await api.wait_http(f"http://127.0.0.1:{api_port}/healthz")

        async with aiohttp.ClientSession() as session:
            for count in worker_counts:
                workers = [
                    Child(
                        "services.worker",
                        _env(settings, {"PANELFLOW_LOG_LEVEL": "INFO"}),
                        logs / f"worker{count}-{i}.log",
                        [],
                    )
                    for i in range(count)
                ]
                children.extend(workers)
                for worker in workers:
                    await wait_log(worker, '"consumer_started"')
                before = await _sim_stats(session, sim_url)
                first_id = await conn.fetchval("SELECT coalesce(max(id), 0) FROM orders")
                roots = {"api": api.proc.pid, "simulator": sim.proc.pid}
                roots |= {f"worker{i + 1}": w.proc.pid for i, w in enumerate(workers)}
                async with measured(f"e2e_workers_{count}", roots, database=DATABASE, probe=probe,
                                    unit="order") as window:  # fmt: skip
                    began = time.monotonic()
                    accepted = await _place_all(api_url, keys_, service_id, orders, concurrency)
                    placed_s = time.monotonic() - began
                    while await conn.fetchval(
                        "SELECT count(*) FROM orders WHERE id > $1 AND status <> 'completed'", first_id
                    ):
                        await asyncio.sleep(0.05)
                    total_s = time.monotonic() - began
                    window.units(accepted)
                after = await _sim_stats(session, sim_url)
                rows = await conn.fetch(
                    """
                    SELECT extract(epoch FROM submitted_at - created_at)::float8 AS submit_s,
                           extract(epoch FROM updated_at - created_at)::float8 AS complete_s
                    FROM orders WHERE id > $1
                    """,
                    first_id,
                )
                calls = after["status_calls"] - before["status_calls"]
                ids = after["status_ids_total"] - before["status_ids_total"]
                results[f"workers_{count}"] = {
                    "orders": accepted,
                    "orders_per_s": round(accepted / total_s, 1),
                    "placement_orders_per_s": round(accepted / placed_s, 1),
                    "seconds": round(total_s, 2),
                    "submission_latency": _percentiles([r["submit_s"] for r in rows]),
                    "completion_latency": _percentiles([r["complete_s"] for r in rows]),
                    "status_calls": calls,
                    "ids_per_status_call": round(ids / calls, 1) if calls else 0,
                    "upstream_adds": after["adds"] - before["adds"],
                    "bought_exactly_once": after["adds"] - before["adds"] == accepted == len(rows),
                    "ledger_ok": not await accounts.ledger_mismatches(conn),
                    # CPU of the bench process placing the orders and polling for them is in `other`.
                    **window.result,
                }
                for worker in workers:
                    worker.stop()
                    children.remove(worker)
        pg_version = await conn.fetchval("SHOW server_version")
    finally:
        for child in reversed(children):
            child.stop()
        await conn.close()
        await delete_amqp_names(settings)
        await drop_database(settings.database_url)
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "e2e": results,
        "config": {"orders": orders, "concurrency": concurrency, **{k.lower(): v for k, v in WORKER_ENV.items()}},
        "machine": machine_info(pg_version),
        "logs": str(logs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__)
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    counts = tuple(int(c) for c in args.workers.split(","))
    result = asyncio.run(run_e2e(orders=args.orders, worker_counts=counts, concurrency=args.concurrency))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"e2e-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if not all(r["bought_exactly_once"] and r["ledger_ok"] for r in result["e2e"].values()):
        sys.exit("VERIFICATION FAILED")


if __name__ == "__main__":
    main()
