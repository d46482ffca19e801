"""Webhooks benchmark: one dispatcher process (`python -m services.webhooks`) delivering `order.status_changed`
events from the outbox (standalone relay → RabbitMQ → ingest → leased sends) to a local receiver that answers
200 at once.

`.venv/bin/python -m bench.webhooks [--events 20000] [--rate 200] [--duration 10] [--accounts 5]`;
`run_webhooks()` is the function a combined benchmark calls.

(0) Ceiling: a bare sender process (`--bare-send`, internal: aiohttp, the same signed body and headers, the
dispatcher's connection limit, no database and no broker) posting `--events` requests to the same receiver;
the most one Python process can hand this receiver on this machine.

(1) Throughput: `--events` outbox rows inserted in batches as fast as possible; deliveries/s counted at the
receiver from its first to its last arrival, their ratio to the ceiling, and the CPU microseconds per delivery
of each process (dispatcher, relay, receiver, Postgres, RabbitMQ), which say more than a rate on a shared
machine.

(2) Latency: events committed one per transaction at a steady `--rate` for `--duration` seconds; the latency
is the commit (wall clock just after COMMIT returned) to the receiver's hand (wall clock when its handler
ran), p50/p99.

Verifies that every event reached its account's
endpoint exactly once (by `webhook-id`) and that no delivery is left unfinished. Its own database
(`panelflow_bench_webhooks`) and AMQP prefix; every process it starts is stopped and its names removed.
Prints one JSON object and writes bench/results/webhooks-<timestamp>.json. The receiver runs in a process of
its own (`--serve-receiver PORT`, internal) so it does not share the dispatcher's cores' event loop.
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
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bench.harness import RESULTS, Child, Probe, delete_amqp_names, free_port, machine_info, measured, wait_log
from shared.db import accounts, outbox
from shared.db.migrate import migrate
from shared.db.pool import connect, create_pool, drop_database, ensure_database, with_database
from shared.domain import lifecycle
from shared.domain.events import Event, EventType
from shared.domain.lifecycle import OrderView
from shared.domain.statuses import OrderState
from shared.logging import configure_logging
from shared.net.guard import AddressGuard
from shared.settings import Settings
from shared.webhooks import signing
from shared.webhooks.endpoints import add_endpoint
from shared.webhooks.secretbox import SecretBox
from shared.webhooks.sender import USER_AGENT, message_body

DATABASE = "panelflow_bench_webhooks"
RECEIVER_HOST = "127.0.0.1"
# Dispatcher tuning for the run; PANELFLOW_* given to the benchmark override these. The per-endpoint rate
# limit is lifted (like the api's rate limits in bench.run): with it, 5 endpoints could never take more than
# 5 x 50/s, and the benchmark measures the dispatcher, not the limiter.
DISPATCHER_ENV = {
    "PANELFLOW_WEBHOOK_ENDPOINT_RATE_PER_S": "0",
    "PANELFLOW_LOG_LEVEL": "INFO",  # production's level: one `webhook_attempt` line per send is part of the cost
}
CEILING_PATH = "/_ceiling"  # the bare sender's requests; not deliveries, left out of the verification
TARGET_PER_S = 1000.0
TARGET_P99_MS = 1000.0
STATES = (OrderState.IN_PROGRESS, OrderState.PROCESSING, OrderState.COMPLETED)


@dataclass(frozen=True)
class Options:
    events: int = 20_000
    batch: int = 500
    rate: float = 200.0
    duration: float = 10.0
    accounts: int = 5
    endpoints_per_account: int = 1
    warmup: int = 200
    keep_db: bool = False


# --- the receiver (its own process) ---------------------------------------------------------------------------

HITS = web.AppKey("hits", list[tuple[str, str, float]])


async def _hook(request: web.Request) -> web.Response:
    # Arrival first: the latency ends when the request is in the receiver's hand, not after our bookkeeping.
    at = time.time()
    request.app[HITS].append((request.path, request.headers.get("webhook-id", ""), at))
    return web.Response()


async def _count(request: web.Request) -> web.Response:
    return web.Response(text=str(len(request.app[HITS])))


async def _hits(request: web.Request) -> web.Response:
    start = int(request.query.get("from", "0"))
    return web.json_response(request.app[HITS][start:])


async def _healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def serve_receiver(port: int) -> None:
    """A receiver that answers 200 at once and remembers (path, webhook-id, arrival wall time) of each POST."""
    import uvloop

    app = web.Application()
    app[HITS] = []
    app.router.add_get("/_bench/count", _count)
    app.router.add_get("/_bench/hits", _hits)
    app.router.add_get("/healthz", _healthz)
    app.router.add_post("/{tail:.*}", _hook)
    web.run_app(
        app, host=RECEIVER_HOST, port=port, access_log=None, print=None, shutdown_timeout=1.0,
        loop=uvloop.new_event_loop(),
    )  # fmt: skip


class ReceiverClient:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def count(self) -> int:
        async with self.session.get(self.base + "/_bench/count") as resp:
            return int(await resp.text())

    async def hits(self, start: int = 0) -> list[tuple[str, str, float]]:
        async with self.session.get(self.base + "/_bench/hits", params={"from": str(start)}) as resp:
            return [(p, i, float(t)) for p, i, t in await resp.json()]

    async def wait_for(self, n: int, *, stall_s: float = 30.0) -> bool:
        """Wait until `n` requests have arrived; False when nothing new arrived for `stall_s`."""
        last, last_change = -1, time.monotonic()
        while True:
            seen = await self.count()
            if seen >= n:
                return True
            if seen != last:
                last, last_change = seen, time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                return False
            await asyncio.sleep(0.02)


# --- set-up --------------------------------------------------------------------------------------------------


def bench_settings() -> Settings:
    base = Settings()
    return base.model_copy(
        update={
            "env": "development",
            "database_url": with_database(base.database_url, DATABASE),
            "amqp_prefix": f"whbench{uuid.uuid4().hex[:8]}",
            "webhooks_allow_http": True,
            "webhooks_allowed_networks": f"{RECEIVER_HOST}/32",
            "webhook_secret_key": SecretStr(Fernet.generate_key().decode()),
        }
    )


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {**DISPATCHER_ENV, **os.environ}
    assert settings.webhook_secret_key is not None
    env.update(
        PANELFLOW_DATABASE_URL=settings.database_url,
        PANELFLOW_AMQP_PREFIX=settings.amqp_prefix,
        PANELFLOW_WEBHOOKS_ALLOW_HTTP="true",
        PANELFLOW_WEBHOOKS_ALLOWED_NETWORKS=settings.webhooks_allowed_networks,
        PANELFLOW_WEBHOOK_SECRET_KEY=settings.webhook_secret_key.get_secret_value(),
        PANELFLOW_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


async def register_endpoints(pool: asyncpg.Pool, settings: Settings, opts: Options, port: int) -> dict[int, list[str]]:
    """Accounts with their endpoints (through the api's use case); account id → the endpoints' receiver paths."""
    guard = AddressGuard(settings.webhooks_allowed_networks)
    box = SecretBox(settings)
    paths: dict[int, list[str]] = {}
    tag = uuid.uuid4().hex[:8]
    try:
        async with pool.acquire() as conn:
            for a in range(opts.accounts):
                account_id = await accounts.create_account(
                    conn, email=f"whbench-{tag}-{a}@example.test", balance=Decimal("1000")
                )
                paths[account_id] = []
                for e in range(opts.endpoints_per_account):
                    path = f"/hook/{a}/{e}"
                    await add_endpoint(
                        conn, settings, guard, box, account_id=account_id,
                        url=f"http://{RECEIVER_HOST}:{port}{path}", events=str(EventType.ORDER_STATUS_CHANGED),
                    )  # fmt: skip
                    paths[account_id].append(path)
    finally:
        await guard.close()
    return paths


def status_event(account_id: int, n: int) -> Event:
    """An `order.status_changed` event shaped like the worker's (shared.domain.lifecycle.status_event)."""
    order = OrderView(
        id=n + 1, account_id=account_id, type="Default", state=OrderState.PENDING, quantity=1000,
        charge=Decimal("0.90000"), refunded=Decimal("0"), currency="USD",
    )  # fmt: skip
    state = STATES[n % len(STATES)]
    body = lifecycle.status_event(order, state=state, refunded=Decimal("0"), start_count=1234, remains=0)
    payload = body.to_payload()
    return Event(EventType.ORDER_STATUS_CHANGED, payload, f"whbench-{n}")


# --- the ceiling: a bare sender ------------------------------------------------------------------------------


async def _bare_send(port: int, n: int, concurrency: int) -> None:
    """Post `n` signed sample bodies to the receiver, `concurrency` at a time; print its CPU seconds as JSON."""
    secret = signing.generate_secret()
    body = message_body("order.status_changed", datetime.now(UTC), dict(status_event(1, 0).payload))
    url = f"http://{RECEIVER_HOST}:{port}{CEILING_PATH}"
    numbers = iter(range(n))
    cpu = time.process_time()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def lane() -> None:
            for i in numbers:
                headers = {
                    **signing.sign_headers([secret], f"ceiling-{i}", body),
                    "content-type": "application/json",
                    "user-agent": USER_AGENT,
                }
                async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                    await resp.read()

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    print(json.dumps({"requests": n, "cpu_s": time.process_time() - cpu}))


def bare_send(port: int, n: int, concurrency: int) -> None:
    import uvloop

    uvloop.run(_bare_send(port, n, concurrency))


async def run_ceiling(client: ReceiverClient, port: int, n: int, concurrency: int) -> dict[str, Any]:
    start = await client.count()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.webhooks", "--bare-send", str(port), str(n), str(concurrency),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the bare sender failed ({proc.returncode})")
    hits = await client.hits(start)
    span = hits[-1][2] - hits[0][2] if len(hits) > 1 else 0.0
    return {
        "requests": len(hits),
        "deliveries_per_s": round((len(hits) - 1) / span, 1) if span > 0 else 0.0,
        "cpu_us_per_request": round(json.loads(out)["cpu_s"] / max(len(hits), 1) * 1e6, 1),
        "concurrency": concurrency,
    }


# --- the phases ----------------------------------------------------------------------------------------------


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def insert_batches(pool: asyncpg.Pool, events: list[Event], batch: int) -> float:
    began = time.monotonic()
    async with pool.acquire() as conn:
        for i in range(0, len(events), batch):
            async with conn.transaction():
                await outbox.add_events(conn, events[i : i + batch])
    return time.monotonic() - began


async def emit_paced(pool: asyncpg.Pool, events: list[Event], rate: float) -> tuple[dict[str, float], float]:
    """Commit each event in its own transaction at `rate`/s; returns event id → commit wall time, and seconds."""
    committed: dict[str, float] = {}

    async def one(event: Event) -> None:
        async with pool.acquire() as conn:
            async with conn.transaction():
                await outbox.add_event(conn, event)
            committed[str(event.id)] = time.time()

    tasks: list[asyncio.Task[None]] = []
    began = time.monotonic()
    for i, event in enumerate(events):
        delay = began + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(event)))
    await asyncio.gather(*tasks)
    return committed, time.monotonic() - began


def expected_pairs(events: list[Event], paths: dict[int, list[str]]) -> set[tuple[str, str]]:
    return {(path, str(e.id)) for e in events for path in paths[e.payload["account_id"]]}


def check_once(hits: list[tuple[str, str, float]], expected: set[tuple[str, str]]) -> dict[str, Any]:
    counts = Counter((path, msg_id) for path, msg_id, _ in hits)
    missing = expected - set(counts)
    duplicates = sum(1 for n in counts.values() if n > 1)
    unexpected = set(counts) - expected
    return {
        "expected": len(expected),
        "received": sum(counts[p] for p in expected),
        "missing": len(missing),
        "duplicated": duplicates,
        "unexpected": len(unexpected),
        "exactly_once": not missing and not duplicates and not unexpected,
    }


async def run_webhooks(opts: Options | None = None, probe: Probe | None = None) -> dict[str, Any]:
    """Set up its own database, AMQP prefix, receiver, relay and one dispatcher; measure; tear it all down.
    `probe` looks closer at the throughput run (bench.profile)."""
    opts = opts or Options()
    settings = bench_settings()
    configure_logging(settings.model_copy(update={"log_level": "WARNING"}), "bench")
    await drop_database(settings.database_url)
    await ensure_database(settings.database_url)
    pool = await create_pool(settings.model_copy(update={"db_pool_min": 1, "db_pool_max": 8}))
    logs = Path(tempfile.mkdtemp(prefix="panelflow-whbench-"))
    children: list[Child] = []
    try:
        conn = await connect(settings)
        try:
            await migrate(conn)
            pg_version = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
        port, ops_port = free_port(), free_port()
        receiver = Child("bench.webhooks", dict(os.environ), logs / "receiver.log", ["--serve-receiver", str(port)])
        children.append(receiver)
        base = f"http://{RECEIVER_HOST}:{port}"
        await receiver.wait_http(base + "/healthz")
        paths = await register_endpoints(pool, settings, opts, port)
        account_ids = list(paths)
        dispatcher_env = child_env(settings, PANELFLOW_METRICS_PORT_WEBHOOKS=str(ops_port))
        dispatcher = Child("services.webhooks", dispatcher_env, logs / "dispatcher.log", [])
        children.append(dispatcher)
        # Ready = consuming its queue (declared by then), so the relay's first publish is routed.
        await dispatcher.wait_http(f"http://127.0.0.1:{ops_port}/readyz")
        relay_env = child_env(settings, PANELFLOW_LOG_LEVEL="INFO", PANELFLOW_METRICS_PORT_RELAY="0")
        relay = Child("services.relay", relay_env, logs / "relay.log", [])
        children.append(relay)
        await wait_log(relay, '"relay_started"')

        def make(n: int, first: int) -> list[Event]:
            return [status_event(account_ids[(first + i) % len(account_ids)], first + i) for i in range(n)]

        async with aiohttp.ClientSession() as session:
            client = ReceiverClient(session, base)
            per_event = opts.endpoints_per_account
            # Warm-up: the whole path once (connections, prepared statements) before anything is measured.
            warm = make(opts.warmup, 0)
            await insert_batches(pool, warm, opts.batch)
            if not await client.wait_for(len(warm) * per_event):
                raise RuntimeError(f"warm-up deliveries stalled; see {logs}")

            # (0) the ceiling, while nothing else runs
            ceiling = await run_ceiling(client, port, opts.events, settings.webhook_max_in_flight)
            await asyncio.sleep(1.0)

            # (1) throughput
            start = await client.count()
            burst = make(opts.events, len(warm))
            roots = {"dispatcher": dispatcher.proc.pid, "relay": relay.proc.pid, "receiver": receiver.proc.pid}
            async with measured("webhooks", roots, database=DATABASE, probe=probe, unit="delivery") as window:
                began_wall = time.time()
                insert_s = await insert_batches(pool, burst, opts.batch)
                complete = await client.wait_for(start + len(burst) * per_event)
                hits = (await client.hits(start))[: len(burst) * per_event]
                window.units(len(hits))
            span = hits[-1][2] - hits[0][2] if len(hits) > 1 else 0.0
            throughput: dict[str, Any] = {
                "events": len(burst),
                "deliveries": len(hits),
                "deliveries_per_s": round((len(hits) - 1) / span, 1) if span > 0 else 0.0,
                "first_to_last_s": round(span, 3),
                # The CPU of the inserts (bench process) and of the wait's polling are in `other`, but for
                # Postgres's share of the inserts.
                **window.result,
                "insert_s": round(insert_s, 3),
                "first_insert_to_last_delivery_s": round(hits[-1][2] - began_wall, 3) if hits else None,
                "complete": complete,
                "load_avg_1m_after": os.getloadavg()[0],
            }
            if ceiling["deliveries_per_s"]:
                throughput["ratio_to_ceiling"] = round(throughput["deliveries_per_s"] / ceiling["deliveries_per_s"], 3)

            # (2) latency at a steady rate
            await asyncio.sleep(1.0)  # let any straggler of (1) land before counting again
            start = await client.count()
            steady = make(int(opts.rate * opts.duration), len(warm) + len(burst))
            async with measured("webhooks_steady", roots, database=DATABASE, unit="delivery") as steady_window:
                committed, emit_s = await emit_paced(pool, steady, opts.rate)
                complete_2 = await client.wait_for(start + len(steady) * per_event)
                hits_2 = await client.hits(start)
                steady_window.units(len(hits_2))
            lat = [at - committed[msg_id] for _, msg_id, at in hits_2 if msg_id in committed]
            latency: dict[str, Any] = {
                "rate_per_s": opts.rate,
                "duration_s": opts.duration,
                "events": len(steady),
                "emitted_per_s": round(len(steady) / emit_s, 1),
                "deliveries": len(hits_2),
                **_percentiles(lat),
                "complete": complete_2,
                "load_avg_1m_after": os.getloadavg()[0],
                **steady_window.result,
            }

            # Late duplicates would show up now: look once more after a pause, then check everything.
            await asyncio.sleep(2.0)
            every = [hit for hit in await client.hits(0) if not hit[0].startswith(CEILING_PATH)]
        once = check_once(every, expected_pairs(warm + burst + steady, paths))
        async with pool.acquire() as c:
            unfinished = await c.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status <> 'succeeded'")
            attempts = await c.fetchval("SELECT count(*) FROM webhook_attempts")
        once["unfinished_deliveries"] = unfinished
        once["attempts"] = attempts
        once["ok"] = once["exactly_once"] and unfinished == 0 and complete and complete_2
    finally:
        for child in reversed(children):
            child.stop()
        await pool.close()
        await delete_amqp_names(settings)
        if not opts.keep_db:
            await drop_database(settings.database_url)
    s = settings
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "ceiling": ceiling,
        "throughput": throughput,
        "latency": latency,
        "verification": once,
        "targets": {
            "deliveries_per_s": TARGET_PER_S,
            "p99_ms_at_rate": TARGET_P99_MS,
            "throughput_met": throughput["deliveries_per_s"] >= TARGET_PER_S,
            "latency_met": latency["p99_ms"] < TARGET_P99_MS and complete_2,
        },
        "config": {
            **asdict(opts),
            "dispatchers": 1,
            **{k.removeprefix("PANELFLOW_").lower(): v for k, v in child_env(s).items() if k in DISPATCHER_ENV},
            "webhook_endpoint_concurrency": s.webhook_endpoint_concurrency,
            "webhook_claim_batch": s.webhook_claim_batch,
            "webhook_max_in_flight": s.webhook_max_in_flight,
            "webhook_poll_s": s.webhook_poll_s,
            "relay_batch": s.relay_batch,
            "amqp_prefetch": s.amqp_prefetch,
        },
        "machine": machine_info(pg_version),
        "logs": str(logs),
    }


def write_result(result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"webhooks-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def run_and_record(opts: Options | None = None) -> bool:
    """Run, print the JSON object, write it to bench/results/; True when the verification passed.
    What `make bench` (bench.run's main) calls after the ingress benchmark."""
    result = asyncio.run(run_webhooks(opts))
    write_result(result)
    print(json.dumps(result, indent=2))
    ok: bool = result["verification"]["ok"]
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.split("\n\n")[0])
    d = Options()
    parser.add_argument("--events", type=int, default=d.events, help="events of the throughput run")
    parser.add_argument("--batch", type=int, default=d.batch, help="outbox rows per insert transaction")
    parser.add_argument("--rate", type=float, default=d.rate, help="events/s of the latency run")
    parser.add_argument("--duration", type=float, default=d.duration, help="seconds of the latency run")
    parser.add_argument("--accounts", type=int, default=d.accounts)
    parser.add_argument("--endpoints-per-account", type=int, default=d.endpoints_per_account)
    parser.add_argument("--warmup", type=int, default=d.warmup, help="events sent before measuring")
    parser.add_argument("--keep-db", action="store_true", help=f"keep the {DATABASE} database afterwards")
    parser.add_argument("--serve-receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--bare-send", type=int, nargs=3, metavar=("PORT", "N", "CONCURRENCY"), help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.serve_receiver is not None:
        serve_receiver(a.serve_receiver)
        return
    if a.bare_send is not None:
        bare_send(*a.bare_send)
        return
    opts = Options(
        a.events, a.batch, a.rate, a.duration, a.accounts, a.endpoints_per_account, max(1, a.warmup), a.keep_db
    )
    if not run_and_record(opts):
        sys.exit("VERIFICATION FAILED")


if __name__ == "__main__":
    main()
