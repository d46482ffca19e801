"""Catalog sync: import or refresh the services an upstream provider sells (`panelflow services sync`).

- Keyed by (provider, the provider's service id): a service seen before is updated in place, a new one added,
  one the upstream no longer lists is deactivated (kept, because orders refer to it).
- Sell rate = cost rate x (1 + markup / 100), rounded half-up to 5 places. With an explicit markup every
  service of the provider is repriced; without one, new services get the default markup and existing ones keep
  the sell rate they have (an operator may have set it by hand).
- Orders are never touched: each carries the rate and charge it was placed at.
- A service whose sell rate charges less than the smallest unit (0.00001) for its minimum quantity is imported
  but flagged (`charges_nothing`): orders too small to cost anything are refused; raise its rate.
- One transaction, the provider's row locked; `panelflow_catalog` is notified so every api reloads its cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from shared.catalog.providers import provider_key
from shared.crypto.secretbox import SecretBoxError, provider_key_box
from shared.db import catalog
from shared.db import providers as provider_sql
from shared.db.catalog import ServiceRow, SyncedService
from shared.db.types import Conn
from shared.domain.money import charges_nothing, quantize
from shared.domain.order_types import FLAT_TYPES
from shared.settings import Settings
from shared.upstream.client import ServicesReply, UpstreamClient


class SyncError(Exception):
    """The sync cannot run (unknown provider, upstream unusable); the message says why, in one line."""


@dataclass
class SyncSummary:
    provider_id: int
    added: list[str] = field(default_factory=list)  # provider service ids
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # upstream entries that cannot be sold
    below_cost: list[str] = field(default_factory=list)  # kept sell rate now below the new cost
    # Sell rate charging less than the smallest unit for the minimum quantity: such small orders are refused.
    charges_nothing: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"provider {self.provider_id}: {len(self.added)} added, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.deactivated)} deactivated, {len(self.skipped)} skipped"
        )


def sell_rate(cost_rate: Decimal, markup_pct: Decimal) -> Decimal:
    return quantize(cost_rate * (1 + markup_pct / 100))


def plan_sync(
    existing: list[ServiceRow], upstream: ServicesReply, *, markup_pct: Decimal | None, default_markup_pct: Decimal
) -> tuple[list[SyncedService], SyncSummary]:
    """Pure: what to write, and the summary. `summary.provider_id` is filled in by the caller."""
    summary = SyncSummary(provider_id=0, skipped=list(upstream.skipped))
    known = {row.provider_service_id: row for row in existing}
    writes: list[SyncedService] = []
    seen: set[str] = set()
    for service in upstream.services:
        if service.service in seen:  # a panel listing one id twice: the first entry wins
            continue
        seen.add(service.service)
        before = known.get(service.service)
        if markup_pct is not None:
            rate = sell_rate(service.rate, markup_pct)
        elif before is None:
            rate = sell_rate(service.rate, default_markup_pct)
        else:
            rate = before.rate
        synced = SyncedService(
            provider_service_id=service.service,
            name=service.name,
            type=service.type,
            category=service.category,
            rate=rate,
            cost_rate=quantize(service.rate),
            min_quantity=service.min,
            max_quantity=service.max,
            refill=service.refill,
            cancel=service.cancel,
            dripfeed=service.dripfeed and service.type == "Default",
        )
        if rate < synced.cost_rate:
            summary.below_cost.append(service.service)
        if charges_nothing(rate, max(synced.min_quantity, 1), flat=synced.type in FLAT_TYPES):
            summary.charges_nothing.append(service.service)
        if before is None:
            summary.added.append(service.service)
        elif before.active and _same(before, synced):
            summary.unchanged.append(service.service)
            continue
        else:
            summary.updated.append(service.service)
        writes.append(synced)
    summary.deactivated = [
        row.provider_service_id
        for row in existing
        if row.active and row.provider_service_id is not None and row.provider_service_id not in seen
    ]
    return writes, summary


def _same(row: ServiceRow, synced: SyncedService) -> bool:
    return (
        row.name, row.type, row.category, row.rate, row.cost_rate, row.min_quantity, row.max_quantity,
        row.refill, row.cancel, row.dripfeed,
    ) == (
        synced.name, synced.type, synced.category, synced.rate, synced.cost_rate, synced.min_quantity,
        synced.max_quantity, synced.refill, synced.cancel, synced.dripfeed,
    )  # fmt: skip


async def apply_sync(
    conn: Conn, provider_id: int, upstream: ServicesReply, *, markup_pct: Decimal | None, default_markup_pct: Decimal
) -> SyncSummary:
    """Write the upstream's catalog for this provider. Run it inside a transaction (the caller's)."""
    if not conn.is_in_transaction():
        raise RuntimeError("apply_sync must run inside a transaction")
    provider = await provider_sql.get_provider(conn, provider_id, for_update=True)
    if provider is None:
        raise SyncError(f"provider {provider_id} not found")
    existing = await catalog.provider_services(conn, provider_id)
    writes, summary = plan_sync(existing, upstream, markup_pct=markup_pct, default_markup_pct=default_markup_pct)
    summary.provider_id = provider_id
    if writes:
        await catalog.upsert_synced_services(conn, provider_id, writes)
    if summary.deactivated:
        await catalog.deactivate_provider_services(conn, provider_id, summary.deactivated)
    if writes or summary.deactivated:
        await catalog.notify_catalog_changed(conn)
    return summary


async def sync_provider(conn: Conn, settings: Settings, provider_id: int, *, markup_pct: Decimal | None) -> SyncSummary:
    """Fetch the provider's `services` and apply them in one transaction of `conn`."""
    provider = await provider_sql.get_provider(conn, provider_id)
    if provider is None:
        raise SyncError(f"provider {provider_id} not found")
    try:
        key = provider_key(provider_key_box(settings), provider)
    except SecretBoxError as exc:
        raise SyncError(f"provider {provider_id}: {exc}") from exc
    async with UpstreamClient(url=provider.url, key=key, settings=settings, name=provider.name) as client:
        upstream = await client.services()  # raises UpstreamError: the caller reports it
    if not upstream.services:
        # Never read an empty (or wholly unusable) list as "the upstream dropped everything": a panel in trouble
        # answers like that, and deactivating the whole catalog would stop every reseller.
        raise SyncError(
            f"provider {provider_id} listed no service that can be sold ({len(upstream.skipped)} unusable): "
            "nothing changed"
        )
    async with conn.transaction():
        return await apply_sync(
            conn,
            provider_id,
            upstream,
            markup_pct=markup_pct,
            default_markup_pct=settings.catalog_default_markup_pct,
        )
