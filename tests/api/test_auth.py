"""Authentication and authorisation: 401 for every bad key alike, 403 for suspended/scope/allow-list."""

from __future__ import annotations

import asyncpg

from shared.auth.keys import generate_key, hash_key, key_prefix
from shared.db import accounts, keys
from tests.api.conftest import ApiClient, eventually
from tests.support.factories import make_account, make_customer, make_key


async def test_missing_wrong_and_revoked_keys_get_one_identical_401(client: ApiClient, pool: asyncpg.Pool) -> None:
    _, key = await make_customer(pool)
    async with pool.acquire() as conn:
        assert await keys.revoke_key(conn, prefix=key_prefix(key))
    missing = await client.call(None, "balance")
    wrong = await client.call("pf_" + "x" * 43, "balance")
    revoked = await client.call(key, "balance")
    for reply in (missing, wrong, revoked):
        assert reply.status == 401
        assert reply.body == {"error": "Invalid API key"}


async def test_revocation_of_a_cached_key_takes_effect_within_a_second(client: ApiClient, pool: asyncpg.Pool) -> None:
    _, key = await make_customer(pool)
    assert (await client.call(key, "balance")).status == 200  # now cached in the api process
    async with pool.acquire() as conn:
        await keys.revoke_key(conn, prefix=key_prefix(key))

    async def refused() -> bool:
        return (await client.call(key, "balance")).status == 401

    assert await eventually(refused, timeout=3.0) < 1.0


async def test_suspended_account_is_403_at_once_and_resumes(client: ApiClient, pool: asyncpg.Pool) -> None:
    account_id, key = await make_customer(pool)
    assert (await client.call(key, "balance")).status == 200
    async with pool.acquire() as conn:
        await accounts.set_status(conn, account_id=account_id, status="suspended")

    async def suspended() -> bool:
        reply = await client.call(key, "balance")
        return reply.status == 403 and reply.error == "Account suspended"

    assert await eventually(suspended) < 1.0
    async with pool.acquire() as conn:
        await accounts.set_status(conn, account_id=account_id, status="active")

    async def resumed() -> bool:
        return (await client.call(key, "balance")).status == 200

    await eventually(resumed)


async def test_key_without_the_scope_is_403(client: ApiClient, pool: asyncpg.Pool) -> None:
    account_id = await make_account(pool)
    reader = await make_key(pool, account_id=account_id, scopes=["read"])
    assert (await client.call(reader, "balance")).status == 200
    reply = await client.call(reader, "add", service=1, link="https://x.test/a", quantity=100, request_id="s1")
    assert reply.status == 403
    assert reply.error == "This API key is not allowed for this action"
    reply = await client.call(reader, "cancel", order=1)
    assert reply.status == 403


async def test_ip_allow_list(client: ApiClient, pool: asyncpg.Pool) -> None:
    account_id = await make_account(pool)
    elsewhere = await make_key(pool, account_id=account_id, allow_ips=["10.0.0.0/8", "2001:db8::/32"])
    here = await make_key(pool, account_id=account_id, allow_ips=["10.0.0.0/8", "127.0.0.1/32"])
    reply = await client.call(elsewhere, "balance")
    assert reply.status == 403
    assert reply.error == "This API key is not allowed from this IP address"
    assert (await client.call(here, "balance")).status == 200


async def test_x_forwarded_for_is_ignored_from_untrusted_peers(client: ApiClient, pool: asyncpg.Pool) -> None:
    # The session api trusts no proxy: a spoofed header must not pass the allow-list.
    account_id = await make_account(pool)
    key = await make_key(pool, account_id=account_id, allow_ips=["10.1.2.3/32"])
    reply = await client.call_with_headers({"X-Forwarded-For": "10.1.2.3"}, key, "balance")
    assert reply.status == 403


async def test_a_key_refused_before_it_existed_works_once_created(client: ApiClient, pool: asyncpg.Pool) -> None:
    # Unknown keys are cached as unknown; creating the key must not leave it refused until the TTL runs out.
    account_id = await make_account(pool)
    key = generate_key()
    assert (await client.call(key, "balance")).status == 401
    async with pool.acquire() as conn:
        await keys.insert_key(
            conn, account_id=account_id, key_hash=hash_key(key), prefix=key_prefix(key), scopes=["read"]
        )

    async def accepted() -> bool:
        return (await client.call(key, "balance")).status == 200

    assert await eventually(accepted, timeout=3.0) < 1.0
