"""SQL of providers and services (the catalog)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg

from shared.db.types import Conn


@dataclass(frozen=True)
class ServiceRow:
    id: int
    name: str
    type: str
    category: str
    rate: Decimal
    cost_rate: Decimal
    min_quantity: int
    max_quantity: int
    refill: bool
    cancel: bool
    dripfeed: bool
    provider_id: int | None
    provider_service_id: str | None
    active: bool


_SERVICE_COLUMNS = (
    "id, name, type, category, rate, cost_rate, min_quantity, max_quantity, refill, cancel, dripfeed, "
    "provider_id, provider_service_id, active"
)


def _service(row: asyncpg.Record) -> ServiceRow:
    return ServiceRow(**dict(row.items()))


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


@dataclass(frozen=True)
class ProviderListing:
    id: int
    name: str
    url: str
    active: bool
    idempotent: bool


async def list_providers(conn: Conn) -> list[ProviderListing]:
    rows = await conn.fetch("SELECT id, name, url, active, idempotent FROM providers ORDER BY id")
    return [ProviderListing(**dict(r.items())) for r in rows]


async def set_provider_idempotent(conn: Conn, provider_id: int, idempotent: bool) -> bool:
    """Whether the provider honours `request_id` on `add`; False when there is no such provider."""
    result: str = await conn.execute("UPDATE providers SET idempotent = $2 WHERE id = $1", provider_id, idempotent)
    return result != "UPDATE 0"


async def add_service(
    conn: Conn,
    *,
    name: str,
    type: str,
    rate: Decimal,
    min_quantity: int,
    max_quantity: int,
    category: str = "",
    cost_rate: Decimal = Decimal(0),
    refill: bool = False,
    cancel: bool = False,
    dripfeed: bool = False,
    provider_id: int | None = None,
    provider_service_id: str | None = None,
) -> int:
    service_id: int = await conn.fetchval(
        """
        INSERT INTO services (name, type, category, rate, cost_rate, min_quantity, max_quantity,
                              refill, cancel, dripfeed, provider_id, provider_service_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id
        """,
        name, type, category, rate, cost_rate, min_quantity, max_quantity,
        refill, cancel, dripfeed, provider_id, provider_service_id,
    )  # fmt: skip
    await notify_catalog_changed(conn)
    return service_id


async def notify_catalog_changed(conn: Conn) -> None:
    await conn.execute("SELECT pg_notify('panelflow_catalog', '')")


async def active_services(conn: Conn) -> list[ServiceRow]:
    rows = await conn.fetch(f"SELECT {_SERVICE_COLUMNS} FROM services WHERE active ORDER BY id")
    return [_service(r) for r in rows]


async def get_service(conn: Conn, service_id: int) -> ServiceRow | None:
    row = await conn.fetchrow(f"SELECT {_SERVICE_COLUMNS} FROM services WHERE id = $1", service_id)
    return None if row is None else _service(row)


async def find_service(conn: Conn, *, name: str, category: str) -> ServiceRow | None:
    """The service with this name in this category (the demo seed finds its own rows again by it)."""
    row = await conn.fetchrow(
        f"SELECT {_SERVICE_COLUMNS} FROM services WHERE name = $1 AND category = $2 ORDER BY id LIMIT 1",
        name,
        category,
    )
    return None if row is None else _service(row)


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


async def set_provider_key(conn: Conn, provider_id: int, api_key_enc: str) -> bool:
    """Store a provider's (encrypted) key; any plaintext one left from before migration 006 goes. False: no
    such provider."""
    done: str = await conn.execute(
        "UPDATE providers SET api_key_enc = $2, api_key = NULL WHERE id = $1", provider_id, api_key_enc
    )
    return done == "UPDATE 1"


@dataclass(frozen=True)
class StoredProviderKey:
    id: int
    api_key_enc: str | None = field(repr=False)
    legacy_api_key: str | None = field(repr=False)  # plaintext from before migration 006, until encrypted


async def has_plaintext_provider_keys(conn: Conn) -> bool:
    found: bool = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM providers WHERE api_key IS NOT NULL)")
    return found


async def provider_keys_for_update(conn: Conn, *, plaintext_only: bool) -> list[StoredProviderKey]:
    """Every provider's stored key (or those still in plaintext), locked until the caller's transaction ends."""
    where = " WHERE api_key IS NOT NULL" if plaintext_only else ""
    rows = await conn.fetch(
        f"SELECT id, api_key_enc, api_key AS legacy_api_key FROM providers{where} ORDER BY id FOR UPDATE"
    )
    return [StoredProviderKey(**dict(r.items())) for r in rows]


# --- catalog sync from an upstream provider (H5: shared/catalog/sync.py) ------------------------------------


@dataclass(frozen=True)
class ProviderRow:
    id: int
    name: str
    url: str
    api_key_enc: str | None = field(repr=False)
    legacy_api_key: str | None = field(repr=False)  # plaintext from before migration 006, until encrypted
    active: bool


async def get_provider(conn: Conn, provider_id: int, *, for_update: bool = False) -> ProviderRow | None:
    """`for_update` locks the provider's row: two syncs of one provider run one after the other."""
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT id, name, url, api_key_enc, api_key AS legacy_api_key, active FROM providers WHERE id = $1{lock}",
        provider_id,
    )
    return None if row is None else ProviderRow(**dict(row.items()))


async def provider_services(conn: Conn, provider_id: int) -> list[ServiceRow]:
    """Every service bought from this provider, active or not."""
    rows = await conn.fetch(f"SELECT {_SERVICE_COLUMNS} FROM services WHERE provider_id = $1 ORDER BY id", provider_id)
    return [_service(r) for r in rows]


@dataclass(frozen=True)
class SyncedService:
    """A service as the upstream sells it, with the sell rate we chose."""

    provider_service_id: str
    name: str
    type: str
    category: str
    rate: Decimal
    cost_rate: Decimal
    min_quantity: int
    max_quantity: int
    refill: bool
    cancel: bool
    dripfeed: bool


_UPSERT_SYNCED = """
    INSERT INTO services (provider_id, provider_service_id, name, type, category, rate, cost_rate,
                          min_quantity, max_quantity, refill, cancel, dripfeed, active)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, TRUE)
    ON CONFLICT (provider_id, provider_service_id) DO UPDATE SET
        name = EXCLUDED.name, type = EXCLUDED.type, category = EXCLUDED.category, rate = EXCLUDED.rate,
        cost_rate = EXCLUDED.cost_rate, min_quantity = EXCLUDED.min_quantity, max_quantity = EXCLUDED.max_quantity,
        refill = EXCLUDED.refill, cancel = EXCLUDED.cancel, dripfeed = EXCLUDED.dripfeed, active = TRUE,
        updated_at = now()
"""


async def upsert_synced_services(conn: Conn, provider_id: int, services: list[SyncedService]) -> None:
    """Insert or refresh these services, keyed by (provider, provider's service id). Orders are not touched:
    each order carries the rate it was placed at."""
    await conn.executemany(
        _UPSERT_SYNCED,
        [
            (provider_id, s.provider_service_id, s.name, s.type, s.category, s.rate, s.cost_rate,
             s.min_quantity, s.max_quantity, s.refill, s.cancel, s.dripfeed)
            for s in services
        ],
    )  # fmt: skip


async def deactivate_provider_services(conn: Conn, provider_id: int, provider_service_ids: list[str]) -> None:
    await conn.execute(
        """
        UPDATE services SET active = FALSE, updated_at = now()
        WHERE provider_id = $1 AND provider_service_id = ANY($2::text[]) AND active
        """,
        provider_id,
        provider_service_ids,
    )


async def list_services(conn: Conn, *, provider_id: int | None = None, active_only: bool = False) -> list[ServiceRow]:
    rows = await conn.fetch(
        f"SELECT {_SERVICE_COLUMNS} FROM services"
        " WHERE ($1::bigint IS NULL OR provider_id = $1) AND (active OR NOT $2) ORDER BY id",
        provider_id,
        active_only,
    )
    return [_service(r) for r in rows]
