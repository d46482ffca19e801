"""SQL of providers and services (the catalog)."""

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


async def add_provider(conn: Conn, *, name: str, url: str, api_key: str) -> int:
    provider_id: int = await conn.fetchval(
        "INSERT INTO providers (name, url, api_key) VALUES ($1, $2, $3) RETURNING id", name, url, api_key
    )
    return provider_id


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
