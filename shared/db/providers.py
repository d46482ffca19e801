"""SQL of upstream providers: one row type for every reader (the worker's clients, catalog sync, key
encryption, the CLI). Our key at a provider is stored encrypted (`shared.catalog.providers` encrypts and
decrypts it); the plaintext column only holds keys written before migration 006, until they are encrypted.

Every function runs on the caller's connection, inside its transaction if it has one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from shared.db.types import Conn


@dataclass(frozen=True)
class ProviderRow:
    id: int
    name: str
    url: str
    active: bool
    idempotent: bool  # honours `request_id` on `add`: an unknown outcome is resolved by sending it again
    api_key_enc: str | None = field(repr=False)  # decrypted by shared.catalog.providers.provider_key
    legacy_api_key: str | None = field(repr=False)  # plaintext from before migration 006, until encrypted


KEY_FIELDS = ("api_key_enc", "legacy_api_key")

_COLUMNS = "id, name, url, active, idempotent, api_key_enc, api_key AS legacy_api_key"


def _row(row: asyncpg.Record) -> ProviderRow:
    return ProviderRow(**dict(row.items()))


async def add_provider(conn: Conn, *, name: str, url: str, api_key_enc: str, idempotent: bool = False) -> int:
    """`api_key_enc`: our key at the provider, already encrypted (shared.catalog.providers does that)."""
    provider_id: int = await conn.fetchval(
        "INSERT INTO providers (name, url, api_key_enc, idempotent) VALUES ($1, $2, $3, $4) RETURNING id",
        name,
        url,
        api_key_enc,
        idempotent,
    )
    return provider_id


async def upsert_provider(conn: Conn, *, name: str, url: str, api_key_enc: str, idempotent: bool = False) -> int:
    """The provider with this name, created or pointed at `url` with this key (the demo seed's simulator)."""
    provider_id: int = await conn.fetchval(
        """
        INSERT INTO providers (name, url, api_key_enc, idempotent) VALUES ($1, $2, $3, $4)
        ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url, api_key_enc = EXCLUDED.api_key_enc, api_key = NULL,
                                         idempotent = EXCLUDED.idempotent
        RETURNING id
        """,
        name,
        url,
        api_key_enc,
        idempotent,
    )
    return provider_id


async def set_provider_idempotent(conn: Conn, provider_id: int, idempotent: bool) -> bool:
    """Whether the provider honours `request_id` on `add`; False when there is no such provider."""
    result: str = await conn.execute("UPDATE providers SET idempotent = $2 WHERE id = $1", provider_id, idempotent)
    return result != "UPDATE 0"


async def set_provider_key(conn: Conn, provider_id: int, api_key_enc: str) -> bool:
    """Store a provider's (encrypted) key; any plaintext one left from before migration 006 goes. False: no
    such provider."""
    done: str = await conn.execute(
        "UPDATE providers SET api_key_enc = $2, api_key = NULL WHERE id = $1", provider_id, api_key_enc
    )
    return done == "UPDATE 1"


async def get_provider(conn: Conn, provider_id: int, *, for_update: bool = False) -> ProviderRow | None:
    """`for_update` locks the provider's row: two syncs of one provider run one after the other."""
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM providers WHERE id = $1{lock}", provider_id)
    return None if row is None else _row(row)


async def list_providers(conn: Conn) -> list[ProviderRow]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM providers ORDER BY id")
    return [_row(r) for r in rows]


async def providers_by_id(conn: Conn) -> dict[int, ProviderRow]:
    """Every provider, active or not (the worker builds its upstream clients from them)."""
    return {p.id: p for p in await list_providers(conn)}


async def has_plaintext_provider_keys(conn: Conn) -> bool:
    found: bool = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM providers WHERE api_key IS NOT NULL)")
    return found


async def providers_for_key_update(conn: Conn, *, plaintext_only: bool) -> list[ProviderRow]:
    """Every provider (or those whose key is still in plaintext), locked until the caller's transaction ends."""
    where = " WHERE api_key IS NOT NULL" if plaintext_only else ""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM providers{where} ORDER BY id FOR UPDATE")
    return [_row(r) for r in rows]
