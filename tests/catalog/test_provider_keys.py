"""Our API keys at the providers: encrypted at rest, decrypted only to call, old plaintext rows encrypted."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from shared.catalog import providers
from shared.crypto.secretbox import PROVIDER_KEY_SETTING, SecretBox, SecretBoxError
from shared.db import providers as provider_sql
from tests.support.factories import PROVIDER_KEY_ENCRYPTION_KEY, provider_box


def box_of(*keys: str) -> SecretBox:
    return SecretBox(SecretStr(",".join(keys)), setting=PROVIDER_KEY_SETTING)


def new_key() -> str:
    return Fernet.generate_key().decode()


def secret() -> str:
    return f"upstream-key-{uuid.uuid4().hex}"


async def tables_holding(conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, text: str) -> list[str]:
    """Every table of the database with a row whose text form contains `text`."""
    tables = await conn.fetch(
        "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS name FROM information_schema.tables"
        " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
    )
    found = []
    for table in tables:
        name = table["name"]
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {name} t WHERE strpos(t::text, $1) > 0)", text):
            found.append(name)
    return found


async def legacy_provider(conn: asyncpg.pool.PoolConnectionProxy, key: str) -> int:
    """A provider row as a release before migration 006 wrote it: the key in plaintext."""
    provider_id: int = await conn.fetchval(
        "INSERT INTO providers (name, url, api_key) VALUES ($1, 'https://up.example/api/v2', $2) RETURNING id",
        f"legacy-{uuid.uuid4().hex[:8]}",
        key,
    )
    return provider_id


async def stored(conn: asyncpg.pool.PoolConnectionProxy, provider_id: int) -> provider_sql.ProviderRow:
    row = await provider_sql.get_provider(conn, provider_id)
    assert row is not None
    return row


async def test_the_database_never_holds_the_plaintext_key(pool: asyncpg.Pool) -> None:
    key, replaced = secret(), secret()
    box = provider_box()
    async with pool.acquire() as conn:
        provider_id = await providers.add_provider(
            conn, box, name=f"p-{uuid.uuid4().hex[:8]}", url="https://u/a", api_key=key
        )
        assert await tables_holding(conn, key) == []
        row = await stored(conn, provider_id)
        assert row.legacy_api_key is None
        assert row.api_key_enc is not None
        assert row.api_key_enc.startswith("gAAAAA")
        assert providers.provider_key(box, row) == key
        assert row.api_key_enc not in repr(row)  # rows show no key material in a log line or a traceback

        assert await providers.set_provider_key(conn, box, provider_id, replaced)
        assert await tables_holding(conn, replaced) == []
        assert providers.provider_key(box, await stored(conn, provider_id)) == replaced
        assert not await providers.set_provider_key(conn, box, 987654321, replaced)

        again = await providers.upsert_provider(conn, box, name=row.name, url="https://v/a", api_key=key)
        assert again == provider_id
        assert await tables_holding(conn, key) == []
        assert providers.provider_key(box, await stored(conn, provider_id)) == key


async def test_a_plaintext_key_cannot_be_stored_as_the_encrypted_one(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await provider_sql.add_provider(
                conn, name=f"p-{uuid.uuid4().hex[:8]}", url="https://u/a", api_key_enc="plain"
            )
        with pytest.raises(asyncpg.CheckViolationError):  # and a provider has a key, one way or the other
            await conn.execute("INSERT INTO providers (name, url) VALUES ($1, 'https://u/a')", uuid.uuid4().hex)


async def test_another_key_does_not_decrypt() -> None:
    token = box_of(new_key()).encrypt("k")
    with pytest.raises(SecretBoxError, match=PROVIDER_KEY_SETTING):
        box_of(new_key()).decrypt(token)
    with pytest.raises(SecretBoxError, match=PROVIDER_KEY_SETTING):
        box_of("not-a-fernet-key")


async def test_plaintext_rows_are_encrypted_and_emptied(pool: asyncpg.Pool) -> None:
    key = secret()
    box = provider_box()
    async with pool.acquire() as conn:
        provider_id = await legacy_provider(conn, key)
        # Until then the worker still reaches the provider with it (an older release may write such rows).
        legacy = await stored(conn, provider_id)
        assert providers.provider_key(box, legacy) == key
        assert key not in repr(legacy)
        report = await providers.encrypt_provider_keys(conn, box, rotate=False)
        assert report.encrypted >= 1
        assert report.reencrypted == 0
        assert await tables_holding(conn, key) == []
        row = await stored(conn, provider_id)
        assert row.legacy_api_key is None
        assert providers.provider_key(box, row) == key
        # Nothing left to do: a second run changes nothing.
        assert await providers.encrypt_provider_keys(conn, box, rotate=False) == providers.KeyReport(0, 0)
        assert (await stored(conn, provider_id)).api_key_enc == row.api_key_enc


async def test_a_plaintext_key_written_by_an_older_release_beats_the_encrypted_one(pool: asyncpg.Pool) -> None:
    old, new = secret(), secret()
    box = provider_box()
    async with pool.acquire() as conn:
        provider_id = await providers.add_provider(
            conn, box, name=f"p-{uuid.uuid4().hex[:8]}", url="https://u/a", api_key=old
        )
        # An older release's upsert sets the plaintext column only.
        await conn.execute("UPDATE providers SET api_key = $2 WHERE id = $1", provider_id, new)
        assert providers.provider_key(box, await stored(conn, provider_id)) == new
        await providers.encrypt_provider_keys(conn, box, rotate=False)
        assert providers.provider_key(box, await stored(conn, provider_id)) == new
        assert await tables_holding(conn, new) == []


async def test_rotation_reencrypts_under_the_first_key_and_refuses_unreadable_keys(pool: asyncpg.Pool) -> None:
    # Rotation covers every provider of the database; the session's rows are under the session key
    # (provider_box), so this row moves from an old key onto that one, as an operator's rotation would.
    old_key, current = new_key(), PROVIDER_KEY_ENCRYPTION_KEY
    key = secret()
    async with pool.acquire() as conn:
        provider_id = await providers.add_provider(
            conn, box_of(old_key), name=f"p-{uuid.uuid4().hex[:8]}", url="https://u/a", api_key=key
        )
        await conn.execute("UPDATE providers SET active = false WHERE id = $1", provider_id)  # no worker reads it
        before = (await stored(conn, provider_id)).api_key_enc
        # Without the old key behind the new one: refused, naming the provider, and nothing changes.
        with pytest.raises(SecretBoxError, match=rf"providers .*\b{provider_id}\b.* nothing was changed"):
            await providers.encrypt_provider_keys(conn, box_of(current), rotate=True)
        assert (await stored(conn, provider_id)).api_key_enc == before
        # `new,old`: every key re-encrypted under the first one; the old key can go afterwards.
        report = await providers.encrypt_provider_keys(conn, box_of(current, old_key), rotate=True)
        assert report.encrypted == 0
        assert report.reencrypted >= 1
        row = await stored(conn, provider_id)
        assert providers.provider_key(box_of(current), row) == key
        with pytest.raises(SecretBoxError):
            providers.provider_key(box_of(old_key), row)
        assert await tables_holding(conn, key) == []
