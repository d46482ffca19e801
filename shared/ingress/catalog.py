"""The in-process catalog: active services, loaded at start, reloaded on NOTIFY and every `catalog_refresh_s`.

`add` validates against it and `services` answers from it, so neither reads the database per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import asyncpg
import structlog

from shared.db import catalog as sql
from shared.db.catalog import ServiceRow
from shared.domain.money import format_money
from shared.domain.order_types import ServiceTerms
from shared.kit.supervisor import Beat, stall_after, supervise
from shared.settings import Settings

log = structlog.get_logger(__name__)


def _public(service: ServiceRow) -> dict[str, object]:
    return {
        "service": service.id,
        "name": service.name,
        "type": service.type,
        "category": service.category,
        "rate": format_money(service.rate),
        "min": str(service.min_quantity),
        "max": str(service.max_quantity),
        "refill": service.refill,
        "cancel": service.cancel,
        "dripfeed": service.dripfeed,
    }


class Catalog:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._terms: dict[int, ServiceTerms] = {}
        self.services_json = b"[]"
        self.loaded = False
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def terms(self, service_id: int) -> ServiceTerms | None:
        return self._terms.get(service_id)

    async def load(self) -> None:
        async with self._pool.acquire(timeout=self._settings.db_acquire_timeout_s) as conn:
            services = await sql.active_services(conn)
        self._terms = {
            s.id: ServiceTerms(
                id=s.id,
                type=s.type,
                rate=s.rate,
                min_quantity=s.min_quantity,
                max_quantity=s.max_quantity,
                dripfeed=s.dripfeed,
            )
            for s in services
        }
        self.services_json = json.dumps([_public(s) for s in services], separators=(",", ":")).encode()
        self.loaded = True
        log.debug("catalog_loaded", services=len(services))

    def request_reload(self, _payload: str = "") -> None:
        """Called on NOTIFY (or a listener reconnect): reload soon, coalescing bursts into one reload."""
        self._dirty.set()

    async def start(self) -> None:
        try:
            await self.load()
        except Exception as exc:  # the database may be down at start: serve 503s and keep trying
            log.warning("catalog_load_failed", error=repr(exc))
            self._dirty.set()
        self._stopping.clear()
        self._task = supervise(
            "catalog-refresh",
            self._refresh_loop,
            stopping=self._stopping,
            stall_after_s=stall_after(self._settings.loop_stall_s, self._settings.catalog_refresh_s),
        )

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresh_loop(self, beat: Beat) -> None:
        while True:
            beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), timeout=self._settings.catalog_refresh_s)
            self._dirty.clear()
            try:
                await self.load()
            except Exception as exc:
                log.warning("catalog_load_failed", error=repr(exc))
                await asyncio.sleep(1.0)
                self._dirty.set()
