"""The key cache hashes a key once, not per request: the text -> SHA-256 map is bounded, ill-formed keys never
enter it, and what it returns is still checked against the stored hash (a revoked key stays refused)."""

from __future__ import annotations

import asyncpg
import pytest

from shared.auth import keys as key_functions
from shared.errors import InvalidApiKey
from shared.ingress import auth
from shared.ingress.auth import KeyCache
from shared.settings import Settings
from tests.support.factories import make_customer


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every key the cache hashes, in order (the real SHA-256 still runs)."""
    seen: list[str] = []

    def counting(key: str) -> bytes:
        seen.append(key)
        return key_functions.hash_key(key)

    monkeypatch.setattr(auth, "hash_key", counting)
    return seen


async def test_a_key_in_use_is_hashed_once(pool: asyncpg.Pool, settings: Settings, hashed: list[str]) -> None:
    cache = KeyCache(pool, settings.model_copy(update={"auth_cache_max_entries": 2}))
    keys = [(await make_customer(pool))[1] for _ in range(3)]
    for _ in range(3):
        assert (await cache.authenticate(keys[0])).record.account_id
    assert hashed == [keys[0]]
    # Bounded: two more keys push the first one out; it is hashed again when it comes back.
    await cache.authenticate(keys[1])
    await cache.authenticate(keys[2])
    await cache.authenticate(keys[0])
    assert hashed == [keys[0], keys[1], keys[2], keys[0]]
    # A key that is not of our format is refused before it is hashed or kept.
    for _ in range(2):
        with pytest.raises(InvalidApiKey):
            await cache.authenticate("not-a-key")
    assert hashed == [keys[0], keys[1], keys[2], keys[0]]


async def test_a_remembered_hash_of_a_revoked_key_is_refused(pool: asyncpg.Pool, settings: Settings) -> None:
    cache = KeyCache(pool, settings)
    account_id, key = await make_customer(pool)
    await cache.authenticate(key)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE account_id = $1", account_id)
    cache.invalidate_account(account_id)
    with pytest.raises(InvalidApiKey):
        await cache.authenticate(key)
