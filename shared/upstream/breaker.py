"""A circuit breaker per upstream provider: stop calling a provider that is down, probe it now and then.

Ours rather than `purgatory`/`aiobreaker` because the client must decide what a failure is *after* reading the
answer (an `{"error"}` reply is a healthy provider, a 502 or a timeout is not) and must turn an open breaker into
`NotSent` without raising through the call; both libraries count exceptions raised inside their context and
let every caller through while half-open. This one lets exactly one probe through, is ~60 lines, and takes a
clock so tests can drive it without sleeping.

closed --(N consecutive failures)--> open --(reset_s elapsed)--> half-open: one probe call
half-open --probe succeeds--> closed; --probe fails--> open again (fresh reset_s)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# Every state by name: the circuit gauge sets 1 for the current one and 0 for the others.
BREAKER_STATES: tuple[str, ...] = tuple(state.value for state in BreakerState)


class CircuitBreaker:
    def __init__(self, *, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures_to_open = max(1, failures)
        self.reset_s = reset_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_out = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probe_out or self._clock() - self._opened_at >= self.reset_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a call go out now? In half-open, True for the one probe only; its outcome must be recorded."""
        if self._opened_at is None:
            return True
        if self._probe_out or self._clock() - self._opened_at < self.reset_s:
            return False
        self._probe_out = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probe_out = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._probe_out or self._failures >= self.failures_to_open:
            self._opened_at = self._clock()
            self._probe_out = False

    def release_probe(self) -> None:
        """The probe ended without telling anything about the provider (e.g. cancelled): let another one try."""
        self._probe_out = False
