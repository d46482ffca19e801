"""The shared periodic loop: first run after its delay, then every interval; stop wakes it at once and lets a
running step finish."""

from __future__ import annotations

import asyncio
import itertools
import time

from shared.kit.periodic import Periodic


async def test_runs_now_then_every_interval_and_stops_at_once() -> None:
    runs: list[float] = []

    async def step() -> None:
        runs.append(time.monotonic())

    loop = Periodic("test", step, every=lambda: 0.05)
    started = time.monotonic()
    await loop.start()
    await asyncio.sleep(0.28)
    stopping = time.monotonic()
    await loop.stop()
    assert time.monotonic() - stopping < 0.05  # not a whole interval
    assert runs[0] - started < 0.05
    assert 4 <= len(runs) <= 7
    count = len(runs)
    await asyncio.sleep(0.1)
    assert len(runs) == count  # stopped for good


async def test_first_delay_and_a_step_in_flight_finishes() -> None:
    finished: list[bool] = []

    async def slow_step() -> None:
        await asyncio.sleep(0.1)
        finished.append(True)

    loop = Periodic("test", slow_step, every=lambda: 10.0, first_delay=0.05)
    await loop.start()
    await asyncio.sleep(0.03)
    assert finished == []  # still in its first delay
    await asyncio.sleep(0.05)  # the step is running now
    await loop.stop()
    assert finished == [True]
    assert loop.stopping.is_set()


async def test_stop_during_the_first_delay_runs_nothing() -> None:
    runs: list[int] = []

    async def step() -> None:
        runs.append(1)

    loop = Periodic("test", step, every=lambda: 1.0, first_delay=5.0)
    await loop.start()
    await loop.stop()
    assert runs == []


async def test_about_every_spreads_the_first_run_and_the_intervals() -> None:
    runs: list[float] = []

    async def step() -> None:
        runs.append(time.monotonic())

    loop = Periodic.about_every("test", step, 0.1)
    started = time.monotonic()
    await loop.start()
    await asyncio.sleep(0.5)
    await loop.stop()
    first = runs[0] - started
    assert 0.045 <= first < 0.1 + 0.1  # half to one interval in, not at once (plus scheduling slack)
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert gaps
    assert all(0.085 <= gap < 0.11 + 0.1 for gap in gaps), gaps  # ± 10 %, plus scheduling slack
