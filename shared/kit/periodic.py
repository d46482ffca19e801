"""A background task that runs one step now (or after a first delay) and again every interval until stopped.

    loop = Periodic("metrics-sampler", sample_once, every=lambda: 15.0)
    await loop.start()      # returns at once
    ...
    await loop.stop()       # wakes it from its wait, lets a running step finish

The step handles the errors it expects (a sampler logs and keeps its last values, a purge logs and retries next
time); anything else it raises is the supervisor's (shared/kit/supervisor.py): logged, counted, and the loop started
again. A loop that completed no step for three intervals (at least `STALL_FLOOR_S`) counts as stalled.
`stopping` is set by `stop()`, for steps that check it between batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

from shared.kit.supervisor import Beat, stall_after, supervise

# A periodic step may take its time (a purge in batches): stalled only after this long at least.
STALL_FLOOR_S = 60.0


class Periodic:
    def __init__(
        self, name: str, step: Callable[[], Awaitable[object]], *, every: Callable[[], float], first_delay: float = 0.0
    ) -> None:
        self._name = name
        self._step = step
        self._every = every
        self._first_delay = first_delay
        self.stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def about_every(cls, name: str, step: Callable[[], Awaitable[object]], interval: float) -> Periodic:
        """Soon after start (restarts may come more often than the interval), then every `interval` ± 10 %, so
        that processes started together do not all run their step at once."""
        return cls(
            name,
            step,
            every=lambda: interval * random.uniform(0.9, 1.1),
            first_delay=random.uniform(0.5, 1.0) * min(interval, 60.0),
        )

    async def start(self) -> None:
        self.stopping.clear()
        stall = stall_after(STALL_FLOOR_S, self._every()) + self._first_delay
        self._task = supervise(self._name, self._run, stopping=self.stopping, stall_after_s=stall)

    async def stop(self) -> None:
        self.stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self, beat: Beat) -> None:
        delay = self._first_delay
        while not await self._stopped_within(delay):
            await self._step()
            beat()
            delay = self._every()

    async def _stopped_within(self, seconds: float) -> bool:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), seconds)
        return self.stopping.is_set()
