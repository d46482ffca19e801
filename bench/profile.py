"""The evidence behind the benchmark's figures: where each process's CPU and Postgres's time go under load.

`.venv/bin/python -m bench.profile [--out bench/results/profiles] [--duration 10] [--no-native]`

Runs the three benchmarks of `make bench` (bench.run, bench.e2e, bench.webhooks) against a private Postgres
started for the run (`shared_preload_libraries=pg_stat_statements`, fsync on like a stock server; the
machine's RabbitMQ as usual), and during their measured runs:
- records a py-spy flame graph (SVG, `--native`: C extensions such as asyncpg's protocol, uvloop and the
  JSON encoders show as themselves; it pauses the process ~100 times a second to sample it) of the api, the
  peer, the worker, the dispatcher and the relay, as `<phase>-<process>.svg` in `--out`, and summarises each
  (the top functions by self time, every package's share, in µs of CPU per unit: the share times the
  process's CPU per unit of the same run);
- resets `pg_stat_statements` and the WAL position at the start and reads them at the end: every costly
  statement per call and per unit (order, order id, delivery), and the WAL bytes per unit;
- at the end of the `add` run over many accounts, the plans of the placement statement (batches of 1, 8 and
  32 orders), and at the end of the webhooks run the plans of the dispatcher's round (fan-out, claim,
  results), each `EXPLAIN (ANALYZE, BUFFERS, WAL)` by auto_explain, nested statements included, rolled back.
Writes `profile-<timestamp>.json` (every benchmark's result with the findings under `probe`) and the plans as
text beside the SVGs. py-spy slows the processes it samples a little: take rates and ratios from `make bench`,
shares and per-statement costs from here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import flamegraph, pgstats
from bench import run as ingress
from bench.e2e import run_e2e
from bench.harness import RESULTS
from bench.webhooks import Options as WebhookOptions
from bench.webhooks import run_webhooks
from tests.support.private_services import PrivatePostgres

# Which processes of each measured run get a flame graph (the process groups of bench.harness.measured).
PROFILED = {
    "add_many": ("ours",),
    "add_one": ("ours",),
    "status": ("ours",),
    "peer_many": ("peer",),
    "e2e_workers_1": ("api", "worker1"),
    "webhooks": ("dispatcher", "relay"),
}
NAMES = {"ours": "api"}  # file names: the group "ours" of bench.run is the api process
SERVER_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    "pg_stat_statements.max": "2000",
    "track_io_timing": "on",
    "fsync": "on",  # like the machine's server: commits wait for the disk
    "max_connections": "200",
}


class Profiler:
    """The probe: py-spy on the chosen processes, pg_stat_statements and WAL over each measured run."""

    def __init__(self, out: Path, admin_url: str, native: bool) -> None:
        self.out = out
        self.admin_url = admin_url
        self.native = native
        self.py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self._spies: dict[str, asyncio.subprocess.Process] = {}
        self._lsn = ""
        self._database: str | None = None

    async def begin(self, phase: str, pids: dict[str, int], database: str | None) -> None:
        self._database = database
        async with self._admin() as conn:
            self._lsn = await pgstats.reset(conn)
        for group in PROFILED.get(phase, ()):
            if group in pids:
                svg = self.out / f"{phase}-{NAMES.get(group, group)}.svg"
                # --native pauses the process for each sample (py-spy cannot unwind C frames otherwise).
                how = ["--native"] if self.native else ["--nonblocking"]
                args = ["record", "--pid", str(pids[group]), "--rate", "100", "--format", "flamegraph",
                        "--output", str(svg), *how]  # fmt: skip
                self._spies[group] = await asyncio.create_subprocess_exec(
                    self.py_spy, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
                )

    async def end(self, phase: str, units: int) -> dict[str, Any]:
        found: dict[str, Any] = {"flamegraphs": {}}
        for group, spy in self._spies.items():
            if spy.returncode is None:
                spy.send_signal(signal.SIGINT)  # py-spy writes the graph on Ctrl-C
            _, err = await spy.communicate()
            svg = self.out / f"{phase}-{NAMES.get(group, group)}.svg"
            if spy.returncode == 0 and svg.exists():
                found["flamegraphs"][group] = {"svg": svg.name, **flamegraph.summary(svg)}
            else:
                found["flamegraphs"][group] = {"error": err.decode(errors="replace")[-500:]}
        self._spies.clear()
        if self._database is None:
            return found
        async with self._admin() as conn:
            found["wal_bytes_per_unit"] = round(await pgstats.wal_since(conn, self._lsn) / max(units, 1), 1)
            found["statements"] = await pgstats.statements(conn, self._database, units)
        async with self._connect(self._database) as conn:
            if phase == "add_many":
                plans = await pgstats.placement_plans(conn)
                path = self.out / "plans-placement.txt"
                path.write_text("".join(f"== {name}\n" + "\n\n".join(p) + "\n\n" for name, p in plans.items()))
                found["plans"] = path.name
            if phase == "webhooks":
                path = self.out / "plans-dispatcher.txt"
                path.write_text("\n\n".join(await pgstats.dispatcher_plans(conn)) + "\n")
                found["plans"] = path.name
        return found

    @contextlib.asynccontextmanager
    async def _connect(self, database: str) -> Any:
        conn = await asyncpg.connect(self.admin_url.rsplit("/", 1)[0] + "/" + database)
        try:
            yield conn
        finally:
            await conn.close()

    def _admin(self) -> Any:
        return self._connect("postgres")


def in_us(result: Any) -> None:
    """Add to every flame-graph summary its functions and packages in µs per unit: the process's user-space
    CPU per unit of the same run (its CPU less the kernel's share) times their share of the user-space
    samples; the kernel's part (system calls, the network stack) as one figure."""
    if isinstance(result, dict):
        probe = result.get("probe")
        cpu = next((v for k, v in result.items() if k.startswith("cpu_us_per_")), None)
        kernel = result.get("kernel_share", {})
        if isinstance(probe, dict) and isinstance(cpu, dict):
            for group, graph in probe.get("flamegraphs", {}).items():
                total = cpu.get(group)
                if total and "functions" in graph:
                    user = total * (1 - kernel.get(group, 0.0))
                    graph["cpu_us_per_unit"] = total
                    graph["kernel_us_per_unit"] = round(total - user, 1)
                    for key in ("functions", "packages"):
                        graph[key] = [[name, share, round(share * user, 1)] for name, share in graph[key]]
        for value in result.values():
            in_us(value)


async def profile(out: Path, duration: int, native: bool) -> dict[str, Any]:
    async with PrivatePostgres(server_settings=SERVER_SETTINGS) as pg:
        conn = await asyncpg.connect(pg.url)
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        finally:
            await conn.close()
        # Every benchmark builds its Settings (and its children's environment) from this.
        os.environ["PANELFLOW_DATABASE_URL"] = pg.database_url("panelflow")
        os.environ.setdefault("PANELFLOW_ENV", "development")
        probe = Profiler(out, pg.url, native)
        opts = replace(ingress.parse_args([]), duration=duration)
        results: dict[str, Any] = {"ingress": await ingress.bench(opts, probe)}
        results["e2e"] = await run_e2e(worker_counts=(1,), probe=probe)
        results["webhooks"] = await run_webhooks(WebhookOptions(), probe)
    in_us(results)
    return {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "native": native, **results}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "profiles", help="where the SVGs and plans go")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured ingress run")
    parser.add_argument(
        "--no-native", action="store_true", help="py-spy --nonblocking, Python frames only (less overhead)"
    )
    a = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    a.out.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(profile(a.out, a.duration, not a.no_native))
    path = a.out / f"profile-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(path)


if __name__ == "__main__":
    main()
