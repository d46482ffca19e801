"""`python -m chaos` (`make chaos`): the whole stack under load and random faults, then an audit.

Settings (environment, or the options of the same name): CHAOS_SECONDS (600: how long faults are injected),
CHAOS_SEED (the fault schedule and the load's choices; random when unset, printed in the summary),
CHAOS_RATE (orders started per second, 8), CHAOS_ACCOUNTS (10), CHAOS_QUIESCE_S (240: the most the run waits
for the stack to settle after the last fault), CHAOS_UPSTREAM_LATENCY_MS (200: every upstream call's latency
when no fault fires, so that kills catch calls in flight), CHAOS_IDEMPOTENT (1: the simulator honours request
ids and its provider is marked so; 0: neither). Prints one JSON summary (also written to chaos/results/, and to
the run's directory with every process's log) and exits 1 when any guarantee was broken.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from chaos.audit import Check, audit
from chaos.evidence import dead_lettered, gather, unsettled
from chaos.load import Load
from chaos.nemesis import CLASSES, Nemesis, schedule
from chaos.receiver import Receiver
from chaos.stack import BALANCE, KINDS, REPLICAS, Stack
from shared.logging import configure_logging
from shared.settings import Settings
from tests.support.processes import free_port

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n\n")[0])
    env = os.environ.get
    parser.add_argument("--seconds", type=float, default=float(env("CHAOS_SECONDS", "600")))
    parser.add_argument("--seed", type=int, default=int(env("CHAOS_SEED", str(random.SystemRandom().randrange(10**6)))))
    parser.add_argument("--rate", type=float, default=float(env("CHAOS_RATE", "8")))
    parser.add_argument("--accounts", type=int, default=int(env("CHAOS_ACCOUNTS", "10")))
    parser.add_argument("--quiesce-s", type=float, default=float(env("CHAOS_QUIESCE_S", "240")))
    parser.add_argument("--upstream-latency-ms", type=float, default=float(env("CHAOS_UPSTREAM_LATENCY_MS", "200")))
    parser.add_argument(
        "--idempotent",
        type=lambda v: v.lower() in ("1", "true", "yes"),
        default=env("CHAOS_IDEMPOTENT", "1").lower() in ("1", "true", "yes"),
        help="the simulator honours request ids and its provider is marked so (1, default) or neither (0)",
    )
    return parser.parse_args(argv)


async def settle(stack: Stack, timeout: float) -> tuple[bool, float, dict[str, int]]:
    """Wait until nothing is in flight any more (orders, refills, outbox, webhook deliveries)."""
    began = time.monotonic()
    next_report = began + 30
    left: dict[str, int] = {}
    while time.monotonic() - began < timeout:
        try:
            conn = await asyncpg.connect(stack.database_url, timeout=5)
            try:
                left = await unsettled(conn)
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError) as exc:
            left = {"database_error": 1}
            print(f"chaos: settle: {exc!r}", file=sys.stderr)
        if not left:
            await asyncio.sleep(2)  # deliveries recorded as sent have reached the receiver by now
            return True, round(time.monotonic() - began, 1), {}
        if time.monotonic() >= next_report:
            print(f"chaos: still in flight after {time.monotonic() - began:.0f} s: {left}", file=sys.stderr, flush=True)
            next_report += 30
        await asyncio.sleep(2)
    return False, round(time.monotonic() - began, 1), left


async def run(args: argparse.Namespace) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix="panelflow-chaos-"))
    stack = Stack(run_dir=run_dir, seed=args.seed, idempotent=args.idempotent)
    receiver = Receiver(secrets={}, port=free_port())
    try:
        print(f"chaos: starting the stack (logs in {run_dir})", file=sys.stderr, flush=True)
        await stack.start(args.accounts)
        await receiver.up()
        await stack.subscribe(receiver.url)
        receiver.secrets.update({a.id: a.secret for a in stack.accounts})
        plan = schedule(args.seconds, args.seed)
        load = Load(stack.api_urls(), stack.accounts, stack.service_id, args.seed, args.rate)
        nemesis = Nemesis(stack, receiver, args.seed, args.upstream_latency_ms)
        await nemesis.calm_upstream()
        print(f"chaos: seed {args.seed}: {len(plan)} faults over {args.seconds:.0f} s", file=sys.stderr, flush=True)
        load_task = asyncio.create_task(load.run_until_stopped())
        await asyncio.gather(nemesis.run(plan), asyncio.sleep(args.seconds))
        print("chaos: faults over; letting the orders in flight finish", file=sys.stderr, flush=True)
        await receiver.up()
        await nemesis.calm_upstream()
        healthy = await stack.all_healthy()
        load.stop()
        await load_task
        print("chaos: load stopped; waiting for the stack to settle", file=sys.stderr, flush=True)
        settled, settle_s, left = await settle(stack, args.quiesce_s)
        assert stack.sim_control is not None
        sim_stats = await stack.sim_control.stats()
        conn = await asyncpg.connect(stack.database_url, timeout=10)
        try:
            evidence = await gather(conn, sim_stats)
        finally:
            await conn.close()
        owned: dict[int, list[int]] = {}
        for order in evidence.orders:
            owned.setdefault(order.account_id, []).append(order.id)
        final = await load.final_reads(owned)
        checks = audit(
            load.history,
            evidence,
            receiver.deliveries,
            final,
            initial_balance=BALANCE,
            idempotent_upstream=stack.idempotent,
        )
        checks.append(
            Check(
                "quiescence",
                not settled,
                sum(left.values()),
                [left] if left else [],
                f"settled in {settle_s} s" if settled else f"not settled after {settle_s} s",
            )
        )
        checks.append(
            Check(
                "webhooks_refused_by_receiver",
                bool(receiver.rejected),
                sum(receiver.rejected.values()),
                [dict(receiver.rejected)] if receiver.rejected else [],
                "bad signatures, unknown paths",
            )
        )
        checks.append(Check("processes_healthy_after_faults", not healthy, 0 if healthy else 1))
        dlq = await dead_lettered(stack.settings())
        checks.append(
            Check(
                "dead_lettered",
                bool(dlq),
                sum(dlq.values()),
                [dlq] if dlq else [],
                "messages a consumer gave up on (an operator must replay them)",
            )
        )
        h = load.history
        summary: dict[str, Any] = {
            "seed": args.seed,
            "seconds": args.seconds,
            "rate_per_s": args.rate,
            "accounts": args.accounts,
            "replicas": dict.fromkeys(KINDS, REPLICAS),
            "idempotent_upstream": stack.idempotent,
            "upstream_latency_ms": args.upstream_latency_ms,
            "faults": {c: n for c, n in sorted(Counter(i.fault for i in nemesis.log).items())},
            "fault_classes_missing": [c for c in CLASSES if c not in {i.fault for i in nemesis.log}],
            "load": {
                "orders_attempted": len(h.attempts),
                "orders_acknowledged": len(h.acknowledged()),
                "add_sends": sum(a.sends for a in h.attempts.values()),
                "resent_on_purpose": h.resent_on_purpose,
                "rejected": Counter(a.rejected for a in h.attempts.values() if a.rejected).most_common(5),
                "gave_up": h.gave_up,
                "shed": h.shed,
                "status_polls": h.status_polls,
                "cancels": dict(h.cancels),
                "refills": dict(h.refills),
                "http": dict(sorted(h.statuses.items())),
                "transport_errors": dict(h.transport_errors),
            },
            "upstream": {k: sim_stats.get(k) for k in ("adds", "orders_created", "faults_fired")},
            "orders_by_status": dict(Counter(o.status for o in evidence.orders)),
            "webhooks": {
                "events": len(evidence.events),
                "received": len(receiver.deliveries),
                "deliveries": evidence.deliveries,
            },
            "processes": {
                "restarts": dict(stack.restarts),
                "unexpected_exits": stack.unexpected_exits,
                "liveness_kills": stack.liveness_kills,
            },
            "checks": {c.name: c.public() for c in checks},
            "broken": [c.name for c in checks if c.broken],
            "fault_log": [vars(i) for i in nemesis.log],
            "logs": str(run_dir),
        }
        text = json.dumps(summary, indent=2, default=str) + "\n"
        (run_dir / "summary.json").write_text(text)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"chaos-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json").write_text(text)
        return summary
    finally:
        await receiver.down()
        await stack.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Our own lines go to stderr (stdout carries only the summary); the broker probes' refusals are expected.
    configure_logging(Settings(log_level="WARNING", log_format="console"), "chaos")
    for name in ("aiormq", "aio_pika"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    summary = asyncio.run(run(args))
    print(json.dumps(summary, indent=2, default=str))
    return 1 if summary["broken"] else 0


if __name__ == "__main__":
    sys.exit(main())
