"""SQL of services (the catalog); their providers are in `shared.db.providers`."""

from __future__ import annotations

from dataclasses import dataclass
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


# --- catalog sync from an upstream provider (H5: shared/catalog/sync.py) ------------------------------------


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
