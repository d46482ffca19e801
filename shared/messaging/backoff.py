"""Reconnection delays shared by the relay and the consumers: exponential, capped, with full jitter."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, cap_s: float, base_s: float = 0.1) -> None:
        self.cap_s = cap_s
        self.base_s = base_s
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        ceiling = min(self.cap_s, self.base_s * 2 ** min(self.failures, 30))
        # Full jitter: many processes reconnecting to a restarted broker do not arrive in lockstep.
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
