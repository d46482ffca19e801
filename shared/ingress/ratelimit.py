"""Three rate-limit layers per minute: client IP, API key, account tier (all keys of an account together).

Sliding-window counters from the `limits` library (a smooth limit like the contract's token bucket, O(1) per
hit), kept in-process or in Redis when `redis_url` is set (several api replicas share the counts then).
A limit of 0 lifts that layer; `rate_limits_enabled=false` lifts all of them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis.asyncio
import structlog
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from shared.db.keys import KeyRecord
from shared.errors import RateLimited
from shared.settings import Settings

log = structlog.get_logger(__name__)
# While the shared store (Redis) fails, calls are let through (fail open) and this often logged.
STORE_ERROR_LOG_EVERY_S = 10.0


@dataclass(frozen=True, slots=True)
class LayerState:
    layer: str  # ip | key | tier
    limit: int
    remaining: int
    reset: float  # unix time when the next call is allowed again (when depleted) or the window moves on


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


def _redis_pool(settings: Settings) -> redis.asyncio.ConnectionPool | None:
    if not settings.redis_url:
        return None
    return redis.asyncio.ConnectionPool.from_url(
        settings.redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )


def _storage(settings: Settings, pool: redis.asyncio.ConnectionPool | None) -> Storage:
    if pool is None:
        return MemoryStorage()
    return RedisStorage(
        "async+" + settings.redis_url,
        implementation="redispy",
        key_prefix=settings.rate_limit_redis_prefix,
        connection_pool=pool,  # type: ignore[arg-type]  # passed through to redis.asyncio.Redis
    )


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.enabled = settings.rate_limits_enabled
        self._redis = _redis_pool(settings) if self.enabled else None
        self._limiter = SlidingWindowCounterRateLimiter(_storage(settings, self._redis)) if self.enabled else None
        self._items: dict[int, RateLimitItem] = {}
        self._store_error_logged_at = 0.0

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    def _item(self, per_minute: int) -> RateLimitItem:
        item = self._items.get(per_minute)
        if item is None:
            item = self._items[per_minute] = RateLimitItemPerMinute(per_minute)
        return item

    async def _hit(self, layer: str, identifier: str, per_minute: int) -> LayerState:
        assert self._limiter is not None
        item = self._item(per_minute)
        try:
            allowed = await self._limiter.hit(item, layer, identifier)
            stats = await self._limiter.get_window_stats(item, layer, identifier)
        except Exception as exc:
            # A rate-limit store outage must not take the API down with it: let the call through.
            now = time.monotonic()
            if now - self._store_error_logged_at > STORE_ERROR_LOG_EVERY_S:
                self._store_error_logged_at = now
                log.error("rate_limit_store_failed", error=repr(exc))
            return LayerState(layer, per_minute, per_minute, time.time() + 60)
        state = LayerState(layer, per_minute, stats.remaining if allowed else 0, stats.reset_time)
        if not allowed:
            raise RateLimitExceeded(state)
        return state

    async def check_ip(self, client_ip: str) -> LayerState | None:
        """Before authentication: the per-IP layer. Raises `RateLimitExceeded` when depleted."""
        per_minute = self._settings.rate_limit_ip_per_min
        if not self.enabled or per_minute <= 0:
            return None
        return await self._hit("ip", client_ip, per_minute)

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
