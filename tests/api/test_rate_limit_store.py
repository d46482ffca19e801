"""Redis (the shared rate-limit store) goes away mid-run: the api keeps serving with every limit off, and says so
(`panelflow_ratelimit_store_up` 0, `panelflow_ratelimit_fail_open_total` counting); limits are back with Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from shared.settings import Settings
from tests.api.conftest import ApiClient
from tests.support.factories import make_customer
from tests.support.private_services import PrivateRedis, private_redis
from tests.support.processes import ApiProcess

LIMIT = 3
__all__ = ["private_redis"]  # the fixture


async def sample(http: aiohttp.ClientSession, api: ApiProcess, name: str, **labels: str) -> float:
    async with http.get(api.metrics_url) as resp:
        text = await resp.text()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


async def test_redis_down_keeps_serving_with_limits_off_and_says_so(
    settings: Settings,
    logs_dir: Path,
    http: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    private_redis: PrivateRedis,
) -> None:
    api = await ApiProcess(
        settings,
        logs_dir / "api-redis-down.log",
        relay_enabled=False,
        rate_limits_enabled=True,
        redis_url=private_redis.url,
        rate_limit_redis_prefix=f"pftest-{uuid.uuid4().hex[:8]}",
        rate_limit_ip_per_min=1000,
        rate_limit_key_default_per_min=LIMIT,
    ).started()
    try:
        client = ApiClient(http, api.url)
        _, key = await make_customer(pool)
        statuses = [(await client.call(key, "balance")).status for _ in range(LIMIT + 1)]
        assert statuses == [200] * LIMIT + [429]  # limited through Redis
        assert await sample(http, api, "panelflow_ratelimit_store_up") == 1

        await private_redis.kill()
        statuses = [(await client.call(key, "balance")).status for _ in range(3 * LIMIT)]
        assert statuses == [200] * (3 * LIMIT)  # served, and unlimited: fail open
        assert await sample(http, api, "panelflow_ratelimit_store_up") == 0
        for layer in ("ip", "key", "tier"):
            assert await sample(http, api, "panelflow_ratelimit_fail_open_total", layer=layer) == 3 * LIMIT

        await private_redis.start()  # back, empty: fresh budgets
        await asyncio.sleep(1.1)  # the store is tried again a second after its last failure
        statuses = [(await client.call(key, "balance")).status for _ in range(LIMIT + 1)]
        assert statuses == [200] * LIMIT + [429]
        assert await sample(http, api, "panelflow_ratelimit_store_up") == 1
    finally:
        api.stop()
    log = api.log_text()
    assert '"rate_limit_store_failed"' in log
    assert '"rate_limit_store_recovered"' in log


async def test_a_hung_redis_costs_one_timeout_per_second_not_one_per_layer_and_call(
    settings: Settings,
    logs_dir: Path,
    http: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    private_redis: PrivateRedis,
) -> None:
    api = await ApiProcess(
        settings,
        logs_dir / "api-redis-hung.log",
        relay_enabled=False,
        rate_limits_enabled=True,
        redis_url=private_redis.url,
        rate_limit_redis_prefix=f"pftest-{uuid.uuid4().hex[:8]}",
    ).started()
    assert private_redis.proc is not None
    try:
        client = ApiClient(http, api.url)
        _, key = await make_customer(pool)
        assert (await client.call(key, "balance")).status == 200
        os.kill(private_redis.proc.pid, signal.SIGSTOP)  # accepts connections, never answers: every call times out
        started = time.monotonic()
        statuses = [(await client.call(key, "balance")).status for _ in range(12)]
        elapsed = time.monotonic() - started
        assert statuses == [200] * 12
        # Waiting on the store for each of three layers, 0.5 s each, on every call: 18 s.
        assert elapsed < 6, elapsed
        assert await sample(http, api, "panelflow_ratelimit_store_up") == 0
    finally:
        os.kill(private_redis.proc.pid, signal.SIGCONT)
        api.stop()
