"""The benchmark's process accounting (bench/procstats.py) against real processes: a Postgres backend is told
apart by its database, and the RSS sampler sees what a process holds."""

from __future__ import annotations

import os

import asyncpg

from bench.procstats import RssSampler, _backend_database, cpu_per_unit, cpu_snapshot
from shared.db.pool import connect
from shared.settings import Settings


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
