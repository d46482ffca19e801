"""The loop supervisor: restarts after a crash or an early exit (logged, counted), backs off, resets after a round,
reports a loop that stops making rounds, and stops when its owner says so."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable

import pytest
import structlog
from aiohttp import ClientSession
from prometheus_client import REGISTRY

from shared.kit.ops_server import OpsServer
from shared.kit.readiness import loops_check
from shared.kit.supervisor import Beat, Supervisor
from tests.support.processes import free_port


def _restarts(loop: str) -> float:
    return REGISTRY.get_sample_value("panelflow_loop_restarts_total", {"loop": loop}) or 0.0


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_a_crashing_loop_is_logged_counted_and_restarted() -> None:
    supervisor = Supervisor()
    stopping = asyncio.Event()
    runs: list[int] = []
    before = _restarts("test-crashes")

    async def body(beat: Beat) -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise asyncpg_like_error()
        while not stopping.is_set():
            beat()
            await asyncio.sleep(0.01)

    with structlog.testing.capture_logs() as logs:
        task = supervisor.supervise("test-crashes", body, stopping=stopping, stall_after_s=60)
        await _until(lambda: len(runs) >= 3)
        stopping.set()
        await asyncio.wait_for(task, 5)
    assert len(runs) == 3
    assert _restarts("test-crashes") - before == 2
    crashes = [e for e in logs if e["event"] == "loop_crashed"]
    assert len(crashes) == 2
    assert all(e["loop"] == "test-crashes" and e["log_level"] == "error" and e.get("exc_info") for e in crashes)
    assert supervisor.loops() == []  # a stopped loop is no longer watched


def asyncpg_like_error() -> Exception:
    import asyncpg

    return asyncpg.InterfaceError("cannot call Connection.fetch(): connection has been released back to the pool")


async def test_a_loop_that_returns_on_its_own_is_restarted() -> None:
    supervisor = Supervisor()
    stopping = asyncio.Event()
    runs = 0

    async def body(beat: Beat) -> None:
        nonlocal runs
        runs += 1
        beat()

    with structlog.testing.capture_logs() as logs:
        task = supervisor.supervise("test-exits", body, stopping=stopping, stall_after_s=60)
        await _until(lambda: runs >= 2)
        stopping.set()
        await asyncio.wait_for(task, 5)
    assert any(e["event"] == "loop_exited" and e["loop"] == "test-exits" for e in logs)


async def test_restart_pauses_grow_while_it_keeps_crashing_and_reset_after_a_round() -> None:
    supervisor = Supervisor()
    stopping = asyncio.Event()
    starts: list[float] = []
    loop = asyncio.get_running_loop()

    async def body(beat: Beat) -> None:
        starts.append(loop.time())
        if len(starts) == 5:
            beat()  # a round completed: the next pause starts small again
        raise RuntimeError("boom")

    with structlog.testing.capture_logs():
        task = supervisor.supervise("test-backoff", body, stopping=stopping, stall_after_s=60)
        await _until(lambda: len(starts) >= 6, timeout=10)
        stopping.set()
        await asyncio.wait_for(task, 5)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # 0.05-0.1, 0.1-0.2, 0.2-0.4, 0.4-0.8 s; then back to 0.05-0.1 s after the round.
    assert gaps[3] > gaps[0] * 2
    assert gaps[4] < gaps[3] / 2


async def test_stopping_cuts_a_restart_pause_short() -> None:
    supervisor = Supervisor()
    stopping = asyncio.Event()

    async def body(_beat: Beat) -> None:
        raise RuntimeError("boom")

    with structlog.testing.capture_logs():
        task = supervisor.supervise("test-stop", body, stopping=stopping, stall_after_s=60)
        await asyncio.sleep(0.5)  # several restarts: the pause is now ~0.4-0.8 s
        stopping.set()
        await asyncio.wait_for(task, 0.3)


async def test_a_loop_without_rounds_makes_readiness_fail_naming_it() -> None:
    supervisor = Supervisor()
    stopping = asyncio.Event()
    stuck = asyncio.Event()

    async def healthy(beat: Beat) -> None:
        while not stopping.is_set():
            beat()
            await asyncio.sleep(0.02)

    async def hangs(beat: Beat) -> None:
        beat()
        await stuck.wait()  # e.g. an await on a dead socket without a timeout

    server = OpsServer("127.0.0.1", free_port(), {"loops": loops_check(supervisor)})
    await server.start()
    tasks = [
        supervisor.supervise("test-healthy", healthy, stopping=stopping, stall_after_s=0.3),
        supervisor.supervise("test-stuck", hangs, stopping=stopping, stall_after_s=0.3),
    ]
    try:
        async with ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}/readyz") as resp:
                assert resp.status == 200
            await asyncio.sleep(0.5)
            assert set(supervisor.stalled()) == {"test-stuck"}
            async with session.get(f"http://127.0.0.1:{server.port}/readyz") as resp:
                body = json.loads(await resp.text())
                assert resp.status == 503
            assert "test-stuck" in body["failed"]["loops"]
            assert "test-healthy" not in body["failed"]["loops"]
    finally:
        stopping.set()
        stuck.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        await server.stop()


@pytest.mark.parametrize(("period_s", "floor_s", "expected"), [(0.25, 60.0, 60.0), (30.0, 60.0, 90.0)])
def test_stall_after_is_a_few_periods_at_least_the_floor(period_s: float, floor_s: float, expected: float) -> None:
    from shared.kit.supervisor import stall_after

    assert stall_after(floor_s, period_s) == expected
