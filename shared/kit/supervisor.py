"""The one supervisor of every long-running loop of a process (claim, record, poll, sweep, relay, listeners,
samplers, consumers, purges).

    task = supervise("webhook-claim", self._claim_loop, stopping=self._stopping, stall_after_s=60.0)

    async def _claim_loop(self, beat: Beat) -> None:
        while not self._stopping.is_set():
            ...one round...
            beat()                      # a round completed: the loop is alive and making progress

A loop handles the failures it expects (a dependency down: log a warning, retry next round). Anything else that
escapes it (a bug, an error nobody foresaw) is logged with its traceback, counted in
`panelflow_loop_restarts_total{loop}` and the loop is started again after a growing pause (0.1 s doubling to
30 s, reset once it completes a round again); a loop that returns while its owner is not stopping is restarted
the same way. A loop that has not completed a round for `stall_after_s` is *stalled*: `/readyz` fails naming it
(`loops_check`), so an orchestrator restarts a process that cannot heal itself.

The supervisor is per process (`SUPERVISOR`, like Prometheus's default registry): whoever starts a loop
registers it there, and the process's readiness reads it. Stopping stays with each loop's owner: it sets its
`stopping` event (which also cuts a restart pause short) and awaits the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import sentry_sdk
import structlog

from shared.observability.metrics import LOOP_RESTARTS

Beat = Callable[[], None]
Body = Callable[[Beat], Awaitable[None]]

RESTART_BASE_S = 0.1
RESTART_MAX_S = 30.0

log = structlog.get_logger(__name__)


@dataclass(eq=False)
class LoopState:
    name: str
    stall_after_s: float
    last_round: float = field(default_factory=time.monotonic)
    restarts: int = 0

    def beat(self) -> None:
        self.last_round = time.monotonic()

    def idle_s(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.last_round


class Supervisor:
    def __init__(self) -> None:
        self._loops: set[LoopState] = set()

    def supervise(self, name: str, body: Body, *, stopping: asyncio.Event, stall_after_s: float) -> asyncio.Task[None]:
        """Run `body(beat)` as a task until `stopping` is set, restarting it after a crash or an early exit."""
        state = LoopState(name, stall_after_s)
        return asyncio.create_task(self._run(state, body, stopping), name=name)

    def loops(self) -> list[LoopState]:
        return sorted(self._loops, key=lambda s: s.name)

    def stalled(self) -> dict[str, float]:
        """The loops that completed no round for longer than they may, with the seconds since their last one."""
        now = time.monotonic()
        stalled: dict[str, float] = {}
        for state in self._loops:
            idle = state.idle_s(now)
            if idle > state.stall_after_s:
                stalled[state.name] = max(idle, stalled.get(state.name, 0.0))
        return stalled

    async def _run(self, state: LoopState, body: Body, stopping: asyncio.Event) -> None:
        self._loops.add(state)
        failures = 0
        try:
            while not stopping.is_set():
                started = state.last_round
                try:
                    await body(state.beat)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if stopping.is_set():
                        log.warning("loop_failed_while_stopping", loop=state.name, error=repr(exc))
                        return
                    failures = 0 if state.last_round != started else failures
                    delay = _delay(failures)
                    log.exception("loop_crashed", loop=state.name, restart_in_s=round(delay, 2))
                    sentry_sdk.capture_exception(exc)
                else:
                    if stopping.is_set():
                        return
                    failures = 0 if state.last_round != started else failures
                    delay = _delay(failures)
                    log.error("loop_exited", loop=state.name, restart_in_s=round(delay, 2))
                failures += 1
                state.restarts += 1
                LOOP_RESTARTS.labels(loop=state.name).inc()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
                if not stopping.is_set():
                    log.info("loop_restarted", loop=state.name, restarts=state.restarts)
        finally:
            self._loops.discard(state)


def _delay(failures: int) -> float:
    # Full jitter: replicas whose loops crash on the same cause do not restart in lockstep.
    ceiling = min(RESTART_MAX_S, RESTART_BASE_S * 2 ** min(failures, 30))
    return random.uniform(ceiling / 2, ceiling)


def stall_after(settings_floor_s: float, period_s: float, periods: float = 3.0) -> float:
    """How long a loop may go without completing a round: a few of its periods, at least the configured floor."""
    return max(settings_floor_s, periods * period_s)


# The process's supervisor: every loop of the process runs under it; its readiness check reads it.
SUPERVISOR = Supervisor()


def supervise(name: str, body: Body, *, stopping: asyncio.Event, stall_after_s: float) -> asyncio.Task[None]:
    return SUPERVISOR.supervise(name, body, stopping=stopping, stall_after_s=stall_after_s)
