"""Rate limits per IP, key and tier, with the contract's headers, in-process and shared through Redis; each layer
a GCRA (a burst of N, then one call back every 60/N s)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio

from shared.ingress.ratelimit import RateLimiter, RateLimitExceeded
from shared.settings import Settings
from tests.api.conftest import ApiClient
from tests.support.factories import make_account, make_key
from tests.support.processes import ApiProcess

LIMITS = {
    "rate_limits_enabled": True,
    "rate_limit_ip_per_min": 5,
    "rate_limit_key_default_per_min": 1000,
    "rate_limit_tier_per_min": {"standard": 1000, "tiny": 3},
    # Tests play many clients from one machine: each test is its own client address behind "our proxy".
    "trusted_proxies": "127.0.0.1/32",
    "relay_enabled": False,
}
REDIS_URL = "redis://127.0.0.1:6379/0"


def fresh_ip() -> dict[str, str]:
    n = uuid.uuid4().int
    return {"X-Forwarded-For": f"198.51.{n % 250}.{(n >> 8) % 250 + 1}, 127.0.0.1"}


@pytest.fixture(scope="module")
async def limited(settings: Settings, logs_dir: Path, http: aiohttp.ClientSession) -> AsyncIterator[ApiClient]:
    process = await ApiProcess(settings, logs_dir / "api-limited.log", **LIMITS).started()
    yield ApiClient(http, process.url)
    process.stop()


async def test_ip_layer_counts_before_authentication(limited: ApiClient) -> None:
    ip = fresh_ip()
    for i in range(5):
        reply = await limited.call_with_headers(ip, "pf_wrong", "balance")
        assert reply.status == 401
        assert reply.headers["X-RateLimit-Remaining"] == str(4 - i)
    denied = await limited.call_with_headers(ip, "pf_wrong", "balance")
    assert (denied.status, denied.body) == (429, {"error": "Rate limit exceeded"})
    assert denied.headers["X-RateLimit-DeniedBy"] == "ip"
    assert denied.headers["X-RateLimit-Limit"] == "5"
    assert denied.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(denied.headers["Retry-After"]) <= 60
    assert int(denied.headers["X-RateLimit-Reset"]) >= int(time.time())
    # Another client address is not affected.
    assert (await limited.call_with_headers(fresh_ip(), "pf_wrong", "balance")).status == 401


async def test_key_layer(limited: ApiClient, pool: asyncpg.Pool) -> None:
    account_id = await make_account(pool)
    key = await make_key(pool, account_id=account_id, rate_limit_per_min=2)
    other = await make_key(pool, account_id=account_id)
    ip = fresh_ip()
    first = await limited.call_with_headers(ip, key, "balance")
    assert first.status == 200
    # The tightest layer is reported: the key's 2/min, not the ip's 5/min.
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == ("2", "1")
    assert (await limited.call_with_headers(ip, key, "balance")).status == 200
    denied = await limited.call_with_headers(ip, key, "balance")
    assert denied.status == 429
    assert denied.headers["X-RateLimit-DeniedBy"] == "key"
    assert int(denied.headers["Retry-After"]) >= 1
    assert (await limited.call_with_headers(fresh_ip(), other, "balance")).status == 200  # per key


async def test_tier_layer_counts_all_keys_of_the_account(limited: ApiClient, pool: asyncpg.Pool) -> None:
    account_id = await make_account(pool, tier="tiny")
    key_a = await make_key(pool, account_id=account_id)
    key_b = await make_key(pool, account_id=account_id)
    for key in (key_a, key_a, key_b):
        reply = await limited.call_with_headers(fresh_ip(), key, "balance")
        assert reply.status == 200
    assert reply.headers["X-RateLimit-Limit"] == "3"
    assert reply.headers["X-RateLimit-Remaining"] == "0"
    denied = await limited.call_with_headers(fresh_ip(), key_b, "balance")
    assert denied.status == 429
    assert denied.headers["X-RateLimit-DeniedBy"] == "tier"


async def test_limits_are_shared_through_redis(
    settings: Settings, logs_dir: Path, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    prefix = f"pftest-{uuid.uuid4().hex[:10]}"
    overrides = {**LIMITS, "redis_url": REDIS_URL, "rate_limit_redis_prefix": prefix}
    one = await ApiProcess(settings, logs_dir / "api-redis-1.log", **overrides).started()
    two = await ApiProcess(settings, logs_dir / "api-redis-2.log", **overrides).started()
    store = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        account_id = await make_account(pool)
        key = await make_key(pool, account_id=account_id, rate_limit_per_min=3)
        a, b = ApiClient(http, one.url), ApiClient(http, two.url)
        ip = fresh_ip()
        assert (await a.call_with_headers(ip, key, "balance")).status == 200
        assert (await b.call_with_headers(ip, key, "balance")).status == 200
        third = await a.call_with_headers(ip, key, "balance")
        assert third.headers["X-RateLimit-Remaining"] == "0"
        denied = await b.call_with_headers(ip, key, "balance")  # the other replica knows the count
        assert denied.status == 429
        assert denied.headers["X-RateLimit-DeniedBy"] == "key"
        stored = [k async for k in store.scan_iter(match=f"{prefix}*")]
        assert stored
    finally:
        one.stop()
        two.stop()
        async for k in store.scan_iter(match=f"{prefix}*"):
            await store.delete(k)
        await store.aclose()


@pytest.mark.parametrize("redis_url", [None, REDIS_URL], ids=["in-process", "redis"])
async def test_each_layer_is_a_gcra_a_burst_then_one_call_per_interval(
    settings: Settings, redis_url: str | None
) -> None:
    """120/min: 120 calls at once, then one call back every 0.5 s — not a fresh 120 at the next minute (a fixed
    window) and not nothing until a window slides by (a counter)."""
    limiter = RateLimiter(
        settings.model_copy(
            update={
                **LIMITS,
                "rate_limit_ip_per_min": 120,
                "redis_url": redis_url,
                "rate_limit_redis_prefix": f"pftest-{uuid.uuid4().hex[:10]}",
            }
        )
    )
    ip = f"203.0.113.{uuid.uuid4().int % 250 + 1}"
    states = [await limiter.check_ip(ip) for _ in range(120)]
    assert [s.remaining for s in states if s is not None] == list(range(119, -1, -1))
    with pytest.raises(RateLimitExceeded) as denied:
        await limiter.check_ip(ip)
    now = time.time()
    assert denied.value.state.layer == "ip"
    assert 0 < denied.value.state.reset - now <= 0.5 + 0.05  # the next call in at most one interval
    await asyncio.sleep(0.6)
    assert await limiter.check_ip(ip) is not None  # one interval later: exactly one call more
    with pytest.raises(RateLimitExceeded):
        await limiter.check_ip(ip)
    await limiter.close()


async def test_a_failing_store_lets_calls_through(settings: Settings) -> None:
    limiter = RateLimiter(settings.model_copy(update={**LIMITS, "redis_url": "redis://127.0.0.1:1/0"}))
    states = [await limiter.check_ip("203.0.113.9") for _ in range(10)]  # limit 5: all through while Redis is down
    assert all(s is not None and s.remaining == s.limit for s in states)
