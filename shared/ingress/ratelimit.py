"""Three rate-limit layers per minute: client IP, API key, account tier (all keys of an account together).

Each layer is a GCRA (the contract's "GCRA/token bucket") from the `throttled-py` library: N per minute with a
burst of N, one call's worth coming back every 60/N s (no window edges where a client can fire 2N at once). The
state (one theoretical arrival time per key) is kept in-process, or in Redis when `redis_url` is set (several
api replicas share it then; the library updates it with one atomic script per call).
A limit of 0 lifts that layer; `rate_limits_enabled=false` lifts all of them.
While the store fails (Redis down or slower than REDIS_TIMEOUT_S), every layer lets calls through (fail open:
availability over limits), `panelflow_ratelimit_store_up` is 0 and `panelflow_ratelimit_fail_open_total` counts them;
after a failure the store is left alone for STORE_RETRY_AFTER_S, so a hung Redis does not add a timeout to every call.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import structlog
from throttled.asyncio import BaseStore, MemoryStore, RateLimiterType, RedisStore, Throttled, per_min
from throttled.asyncio.rate_limiter import BaseRateLimiter

from shared.db.keys import KeyRecord
from shared.errors import RateLimited
from shared.ingress.client_address import rate_limit_bucket
from shared.observability import metrics
from shared.settings import Settings

log = structlog.get_logger(__name__)
# While the shared store (Redis) fails, calls are let through (fail open) and this often logged.
STORE_ERROR_LOG_EVERY_S = 10.0
# In-process state: at most this many keys (least recently used ones go first).
MEMORY_KEYS_MAX = 100_000


@dataclass(frozen=True, slots=True)
class LayerState:
    layer: str  # ip | key | tier
    limit: int
    remaining: int
    reset: float  # unix time when the next call is allowed again (when depleted) or the bucket is full again


class RateLimitExceeded(RateLimited):
    """A 429 that knows which layer refused and that layer's state, for the response headers."""

    def __init__(self, state: LayerState) -> None:
        super().__init__()
        self.state = state


def headers(state: LayerState, *, denied: bool = False, now: float) -> dict[str, str]:
    values = {
        "X-RateLimit-Limit": str(state.limit),
        "X-RateLimit-Remaining": str(state.remaining),
        "X-RateLimit-Reset": str(math.ceil(state.reset)),
    }
    if denied:
        values["X-RateLimit-DeniedBy"] = state.layer
        values["Retry-After"] = str(max(1, math.ceil(state.reset - now)))
    return values


# A slow Redis must not stall requests: give up quickly and fail open (see `_hit`).
REDIS_TIMEOUT_S = 0.5
# After a store failure, calls do not wait on the store again for this long: a hung Redis costs one timeout per
# interval, not one per layer and call.
STORE_RETRY_AFTER_S = 1.0


def _store(settings: Settings) -> BaseStore:
    if not settings.redis_url:
        return MemoryStore(options={"MAX_SIZE": MEMORY_KEYS_MAX})
    return RedisStore(
        server=settings.redis_url,
        options={"SOCKET_TIMEOUT": REDIS_TIMEOUT_S, "SOCKET_CONNECT_TIMEOUT": REDIS_TIMEOUT_S},
    )


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.enabled = settings.rate_limits_enabled
        self._store = _store(settings) if self.enabled else None
        self._limiters: dict[int, BaseRateLimiter] = {}
        self._store_error_logged_at = 0.0
        self._store_up = True
        self._store_skipped_until = 0.0
        metrics.RATE_LIMIT_STORE_UP.set(1)

    async def close(self) -> None:
        """Nothing to release: the store's connections close with the process."""

    def _limiter(self, per_minute: int) -> BaseRateLimiter:
        limiter = self._limiters.get(per_minute)
        if limiter is None:
            throttle = Throttled(
                using=RateLimiterType.GCRA.value,
                quota=per_min(per_minute, burst=per_minute),
                store=self._store,
                key_prefix=self._settings.rate_limit_redis_prefix,
            )
            limiter = self._limiters[per_minute] = throttle.limiter
        return limiter

    async def _hit(self, layer: str, identifier: str, per_minute: int) -> LayerState:
        # A rate-limit store outage must not take the API down with it: let the call through, and say so (the
        # gauge, the counter, a log line every STORE_ERROR_LOG_EVERY_S).
        if time.monotonic() < self._store_skipped_until:
            metrics.RATE_LIMIT_FAIL_OPEN.labels(layer=layer).inc()
            return LayerState(layer, per_minute, per_minute, time.time() + 60)
        try:
            result = await self._limiter(per_minute).limit(f"{layer}:{identifier}")
        except Exception as exc:
            self._store_failed(exc, layer)
            return LayerState(layer, per_minute, per_minute, time.time() + 60)
        if not self._store_up:
            self._store_up = True
            metrics.RATE_LIMIT_STORE_UP.set(1)
            log.warning("rate_limit_store_recovered")
        got = result.state
        if result.limited:
            raise RateLimitExceeded(LayerState(layer, per_minute, 0, time.time() + got.retry_after))
        return LayerState(layer, per_minute, got.remaining, time.time() + got.reset_after)

    def _store_failed(self, exc: Exception, layer: str) -> None:
        metrics.RATE_LIMIT_FAIL_OPEN.labels(layer=layer).inc()
        if self._store_up:
            self._store_up = False
            metrics.RATE_LIMIT_STORE_UP.set(0)
        now = time.monotonic()
        self._store_skipped_until = now + STORE_RETRY_AFTER_S
        if now - self._store_error_logged_at > STORE_ERROR_LOG_EVERY_S:
            self._store_error_logged_at = now
            log.error("rate_limit_store_failed", error=repr(exc), limits="off until the store answers again")

    async def check_ip(self, client_ip: str) -> LayerState | None:
        """Before authentication: the per-IP layer (IPv6: per network of `rate_limit_ipv6_prefix` bits). Raises
        `RateLimitExceeded` when depleted."""
        per_minute = self._settings.rate_limit_ip_per_min
        if not self.enabled or per_minute <= 0:
            return None
        return await self._hit("ip", rate_limit_bucket(client_ip, self._settings.rate_limit_ipv6_prefix), per_minute)

    async def check_caller(self, record: KeyRecord) -> list[LayerState]:
        """After authentication: the key layer, then the account's tier layer."""
        if not self.enabled:
            return []
        states = []
        key_limit = record.rate_limit_per_min
        if key_limit is None:
            key_limit = self._settings.rate_limit_key_default_per_min
        if key_limit > 0:
            states.append(await self._hit("key", str(record.key_id), key_limit))
        tier_limit = self._settings.rate_limit_tier_per_min.get(record.tier, 0)
        if tier_limit > 0:
            states.append(await self._hit("tier", str(record.account_id), tier_limit))
        return states


def tightest(states: list[LayerState]) -> LayerState | None:
    return min(states, key=lambda s: (s.remaining, -s.reset), default=None)
