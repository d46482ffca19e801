"""The backup procedure of docs/operations.md ("Back up and restore"): `pg_dump -Fc` of a database with orders in
flight (some bought upstream and being polled, some accepted and not yet sent), `pg_restore` into a fresh
database, then `panelflow migrate status` up to date, `panelflow ledger check` clean, and a worker on a fresh
broker (nothing of the old queues survives) takes every order to its end: the database alone is enough."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from shared.db.pool import create_pool, drop_database, ensure_database, with_database
from shared.messaging.relay import OutboxRelay
from shared.ordering.placement import Placer
from shared.settings import Settings
from tests.cli.conftest import run_cli
from tests.support.factories import make_account
from tests.support.isolation import delete_amqp_names, fresh_database
from tests.support.processes import free_port
from tests.support.worker import SimProcess, WorkerProcess, make_provider_services, place, unique_link

FAST = {
    "relay_poll_s": 0.2,
    "upstream_timeout_s": 2.0,
    "upstream_connect_timeout_s": 1.0,
    "worker_poll_min_s": 0.2,
    "worker_poll_max_s": 1.0,
    "worker_poll_age_factor": 0.05,
    "worker_poll_idle_s": 0.1,
    "worker_sweep_s": 0.5,
    "worker_retry_base_s": 0.5,
    "worker_retry_max_s": 2.0,
    "worker_submit_grace_s": 2.0,
    "worker_submitting_timeout_s": 6.0,
    "worker_drain_s": 5.0,
    "sim_pending_s": 0.2,
    "sim_completion_s": 6.0,  # bought orders are still running upstream when the backup is taken and restored
}


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (postgresql-client; scripts/ensure-test-tools.sh installs it)"
    return path


async def _run(*command: str) -> None:
    proc = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, (command[0], out, err)


async def _statuses(pool: asyncpg.Pool, ids: list[int]) -> dict[int, str]:
    rows = await pool.fetch("SELECT id, status FROM orders WHERE id = ANY($1::bigint[])", ids)
    return {r["id"]: r["status"] for r in rows}


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


async def test_backup_with_orders_in_flight_restores_and_every_order_is_followed(
    base_settings: Settings, logs_dir: Path, tmp_path: Path
) -> None:
    pg_dump, pg_restore = _tool("pg_dump"), _tool("pg_restore")
    run = uuid.uuid4().hex[:6]
    async with fresh_database(base_settings.database_url, f"bk{run}") as url:
        before = base_settings.model_copy(update={"database_url": url, "amqp_prefix": f"bk{run}a", **FAST})
        after = before.model_copy(
            update={"database_url": with_database(url, f"{url.rsplit('/', 1)[-1]}_restored"),
                    "amqp_prefix": f"bk{run}b"}
        )  # fmt: skip
        pool = await create_pool(before)
        sim = SimProcess(before, logs_dir / f"backup-sim-{run}.log", metrics_port_sim=free_port())
        await sim.started()
        placer, relay = Placer(pool, before), OutboxRelay(before, pool)
        restored_pool: asyncpg.Pool | None = None
        relay_running = True
        try:
            await placer.start()
            await relay.start()
            catalog = await make_provider_services(pool, url=sim.api_url, key=before.sim_key, idempotent=True)
            account = await make_account(pool, balance="500")
            worker = WorkerProcess(before, logs_dir / f"backup-worker-a-{run}.log", metrics_port_worker=free_port())
            await worker.started()
            bought = [
                await place(placer, pool, account_id=account, service_id=catalog["default"], link=unique_link(),
                            quantity=100)
                for _ in range(4)
            ]  # fmt: skip

            async def all_bought() -> bool:
                return set((await _statuses(pool, bought)).values()) <= {"in_progress", "processing"}

            await _until(all_bought, 30, "the first orders to be bought upstream")
            assert worker.stop() == 0
            await relay.stop()
            relay_running = False
            # Accepted while no worker runs: pending, their messages only in the old broker's queue.
            waiting = [
                await place(placer, pool, account_id=account, service_id=catalog["default"], link=unique_link(),
                            quantity=100)
                for _ in range(3)
            ]  # fmt: skip
            snapshot = await _statuses(pool, bought + waiting)
            assert {snapshot[i] for i in waiting} == {"pending"}
            assert {snapshot[i] for i in bought} <= {"in_progress", "processing"}

            dump = tmp_path / "panelflow.dump"
            await _run(pg_dump, "--format=custom", f"--file={dump}", url)
            await drop_database(after.database_url)
            await ensure_database(after.database_url)
            await _run(pg_restore, "--no-owner", "--exit-on-error", f"--dbname={after.database_url}", str(dump))

            status = run_cli(after, "migrate", "status")
            assert status.code == 0, status
            ledger = run_cli(after, "ledger", "check")
            assert ledger.code == 0, ledger
            assert ledger.out.startswith("ledger ok"), ledger

            # A new broker (fresh names): the restored database alone drives every order to its end.
            restored_pool = await create_pool(after)
            assert await _statuses(restored_pool, bought + waiting) == snapshot
            revived = WorkerProcess(after, logs_dir / f"backup-worker-b-{run}.log", metrics_port_worker=free_port())
            await revived.started()

            async def all_completed() -> bool:
                assert restored_pool is not None
                return set((await _statuses(restored_pool, bought + waiting)).values()) == {"completed"}

            await _until(all_completed, 90, "every restored order to complete")
            assert revived.stop() == 0
            stats = await sim.stats()
            assert sum(stats["adds_per_link"].values()) == len(bought + waiting), "each bought exactly once"
            assert run_cli(after, "ledger", "check").code == 0
        finally:
            await placer.close()
            if relay_running:
                await relay.stop()
            await pool.close()
            if restored_pool is not None:
                await restored_pool.close()
            sim.stop()
            await drop_database(after.database_url)
            await delete_amqp_names(before)
            await delete_amqp_names(after)
