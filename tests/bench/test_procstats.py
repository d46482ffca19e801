"""The benchmark's process accounting (bench/procstats.py) against real processes: a Postgres backend is told
apart by its database, and the RSS sampler sees what a process holds."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from bench.procstats import RssSampler, _backend_database, cpu_per_unit, cpu_snapshot, listener
from shared.db.pool import connect
from shared.settings import Settings
from tests.support.processes import free_port


async def test_a_postgres_backend_is_known_by_its_database(settings: Settings) -> None:
    conn: asyncpg.Connection = await connect(settings)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        database = await conn.fetchval("SELECT current_database()")
        found = _backend_database(pid)
        sampler = RssSampler({}, database)
        sampler.start()
        peaks = await sampler.stop()
    finally:
        await conn.close()
    assert found == database
    assert peaks["postgres_backends"] >= 1
    assert peaks["postgres_backend_max"] > 0


async def test_rss_peak_and_cpu_of_a_process_tree() -> None:
    sampler = RssSampler({"me": os.getpid()}, None)
    before = cpu_snapshot({"me": os.getpid()})
    sampler.start()
    ballast = bytearray(64 * 1024 * 1024)  # touched: 64 MB resident
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    sum(range(3_000_000))  # some CPU
    peaks = await sampler.stop()
    spent = cpu_per_unit(before, cpu_snapshot({"me": os.getpid()}), 1)
    del ballast
    assert peaks["me"] >= 64
    assert spent["me"] > 0
    assert "other" in spent


async def test_the_postgres_of_the_settings_is_the_tree_of_its_listener(settings: Settings) -> None:
    conn: asyncpg.Connection = await connect(settings)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        port = urlsplit(settings.database_url).port or 5432
        postmaster = listener(port, "postgres")
        parent = int(_stat(backend).rsplit(")", 1)[1].split()[1])
    finally:
        await conn.close()
    assert postmaster is not None
    assert parent == postmaster  # our backend is a child of the server listening on the configured port
    assert listener(free_port(), "postgres") is None  # nobody listens there


def _stat(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text()
