"""What a key costs the database, counted by the database itself (pg_stat_statements in a private Postgres):
a key that is not of our format costs nothing, and a full key cache keeps the keys in use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from shared.auth.keys import generate_key
from shared.db.migrate import migrate
from shared.db.pool import connect, ensure_database
from shared.settings import Settings
from tests.api.conftest import ApiClient
from tests.support.factories import make_customer
from tests.support.private_services import PrivatePostgres
from tests.support.processes import ApiProcess

CACHE_MAX = 10
INVALID = {"error": "Invalid API key"}


@dataclass
class Counted:
    client: ApiClient
    pool: asyncpg.Pool
    stats: asyncpg.Connection

    async def lookups(self) -> int:
        """How often the api has looked a key up (`shared.db.keys.find_by_hash`) since the server started."""
        return int(
            await self.stats.fetchval(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%WHERE k.key_hash = $1%'"
            )
        )


@pytest.fixture(scope="module")
async def counted(base_settings: Settings, logs_dir: Path, http: aiohttp.ClientSession) -> AsyncIterator[Counted]:
    async with PrivatePostgres(server_settings={"shared_preload_libraries": "pg_stat_statements"}) as pg:
        settings = base_settings.model_copy(update={"database_url": pg.database_url("panelflow")})
        await ensure_database(settings.database_url)
        conn = await connect(settings)
        try:
            await migrate(conn)
            await conn.execute("CREATE EXTENSION pg_stat_statements")
            pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
            process = await ApiProcess(
                settings,
                logs_dir / "api-key-lookups.log",
                relay_enabled=False,
                auth_cache_ttl_s=300.0,
                auth_cache_max_entries=CACHE_MAX,
            ).started()
            try:
                yield Counted(ApiClient(http, process.url), pool, conn)
            finally:
                process.stop()
                await pool.close()
        finally:
            await conn.close()


@pytest.mark.parametrize(
    "key",
    [
        "pf_short",
        "pf_" + "x" * 44,
        "pf_" + "x" * 42 + "!",
        "xx_" + "x" * 43,
        "pf_" + "é" * 43,
        "pf_" + "x" * 10_000,
    ],
    ids=["short", "long", "bad-character", "bad-prefix", "non-ascii", "huge"],
)
async def test_a_malformed_key_is_refused_without_a_lookup(counted: Counted, key: str) -> None:
    before = await counted.lookups()
    for _ in range(5):
        reply = await counted.client.call(key, "balance")
        assert (reply.status, reply.body) == (401, INVALID)
    assert await counted.lookups() == before
    # The control: a well-formed key we never issued costs exactly one lookup (then it is cached as unknown).
    unknown = generate_key()
    for _ in range(3):
        assert (await counted.client.call(unknown, "balance")).body == INVALID
    assert await counted.lookups() == before + 1


async def test_a_full_cache_keeps_the_keys_in_use(counted: Counted) -> None:
    _, hot = await make_customer(counted.pool)
    # Creating the key notifies the api, which drops that account's cache entries whenever the notification
    # arrives: wait until a call of the key costs no lookup any more.
    for _ in range(50):
        before = await counted.lookups()
        assert (await counted.client.call(hot, "balance")).status == 200
        if await counted.lookups() == before:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the key in use is never cached")
    flood = [generate_key() for _ in range(3 * CACHE_MAX)]
    for n, key in enumerate(flood):
        assert (await counted.client.call(key, "balance")).status == 401
        if n % 3 == 0:  # the reseller keeps calling meanwhile
            assert (await counted.client.call(hot, "balance")).status == 200
    # One lookup per flooding key, none for the key in use: it was never pushed out (clearing would have).
    assert await counted.lookups() == before + len(flood)
    # And the cache is bounded: the oldest flooding keys are gone (looked up again), the newest still cached.
    for key in flood[:3]:
        await counted.client.call(key, "balance")
    assert await counted.lookups() == before + len(flood) + 3
    for key in flood[-3:]:
        await counted.client.call(key, "balance")
    assert await counted.lookups() == before + len(flood) + 3
