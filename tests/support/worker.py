"""Test support of the worker: the simulator and worker processes, the catalog mapped onto the simulator,
order placement through the real Placer, and small waits."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg

from shared.db import catalog as catalog_sql
from shared.domain.order_types import ServiceTerms, draft_order, fingerprint
from shared.ordering.outcomes import PlacementRequest
from shared.ordering.placement import Placer
from shared.settings import Settings
from tests.support.factories import make_provider
from tests.support.processes import ManagedProcess, free_port, settings_env

T = TypeVar("T")


class SimProcess(ManagedProcess):
    """`python -m services.provider_sim` on a free port."""

    def __init__(self, settings: Settings, log_path: Path, **overrides: Any) -> None:
        self.port = free_port()
        super().__init__("services.provider_sim", settings_env(settings, sim_port=self.port, **overrides), log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/v2"

    async def started(self) -> SimProcess:
        self.start()
        await self.wait_http(self.url + "/healthz")
        return self

    async def control(self, path: str, body: Any = None) -> Any:
        async with aiohttp.ClientSession() as session:
            if body is None and path == "/_sim/stats":
                async with session.get(self.url + path) as resp:
                    return await resp.json()
            async with session.post(self.url + path, json=body if body is not None else {}) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.control("/_sim/stats")
        return result

    async def faults(self, rules: list[dict[str, Any]] | None = None, drift: list[str] | None = None) -> None:
        await self.control("/_sim/faults", {"rules": rules or [], "drift": drift or []})


class WorkerProcess(ManagedProcess):
    """`python -m services.worker`, ready once its consumer subscribed."""

    def __init__(self, settings: Settings, log_path: Path, **overrides: Any) -> None:
        super().__init__("services.worker", settings_env(settings, **overrides), log_path)

    async def started(self, timeout: float = 90.0) -> WorkerProcess:
        offset = len(self.log_text())
        self.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker exited early:\n{self.log_text()[-4000:]}")
            if '"consumer_started"' in self.log_text()[offset:]:
                return self
            await asyncio.sleep(0.1)
        raise TimeoutError(f"worker did not start:\n{self.log_text()[-4000:]}")


async def make_provider_services(pool: asyncpg.Pool, *, url: str, key: str, idempotent: bool = False) -> dict[str, int]:
    """A provider row for the simulator (`idempotent`: marked as honouring request_id) and our services mapped
    onto its catalog, by role."""
    async with pool.acquire() as conn:
        provider_id = await make_provider(
            conn, name=f"sim-{uuid.uuid4().hex[:8]}", url=url, key=key, idempotent=idempotent
        )
        specs: dict[str, dict[str, Any]] = {
            # sim 1: Default, refill, cancel, drip-feed
            "default": {"type": "Default", "psid": "1", "min": 50, "max": 10_000, "refill": True, "cancel": True,
                        "dripfeed": True},
            # sim 8: Default with refill, no cancel
            "nocancel": {"type": "Default", "psid": "8", "min": 100, "max": 1_000_000, "refill": True},
            # sim 2: Default without refill
            "norefill": {"type": "Default", "psid": "2", "min": 10, "max": 50_000, "cancel": True},
            "package": {"type": "Package", "psid": "3", "min": 1, "max": 1, "rate": "15.00"},
            "subscriptions": {"type": "Subscriptions", "psid": "7", "min": 50, "max": 10_000},
            # a service the upstream does not know: every `add` is refused ("Incorrect service ID")
            "unknown_upstream": {"type": "Default", "psid": "999", "min": 10, "max": 10_000},
        }  # fmt: skip
        ids = {"provider": provider_id}
        for role, spec in specs.items():
            ids[role] = await catalog_sql.add_service(
                conn,
                name=f"{role} via sim",
                type=spec["type"],
                rate=Decimal(spec.get("rate", "1.00")),
                min_quantity=spec["min"],
                max_quantity=spec["max"],
                refill=spec.get("refill", False),
                cancel=spec.get("cancel", False),
                dripfeed=spec.get("dripfeed", False),
                provider_id=provider_id,
                provider_service_id=spec["psid"],
            )
    return ids


def unique_link(marker: str = "") -> str:
    link = f"https://example.test/p/{uuid.uuid4().hex[:12]}"
    return f"{link}?sim={marker}" if marker else link


async def place(placer: Placer, pool: asyncpg.Pool, *, account_id: int, service_id: int, **params: Any) -> int:
    """Place an order the way the api does (validation, pricing, the Placer's transaction + outbox)."""
    async with pool.acquire() as conn:
        service = await catalog_sql.get_service(conn, service_id)
    assert service is not None
    terms = ServiceTerms(
        service.id, service.type, service.rate, service.min_quantity, service.max_quantity, service.dripfeed
    )
    raw = {"service": str(service_id), **{k: str(v) for k, v in params.items()}}
    draft = draft_order(raw, terms)
    return await placer.place(
        PlacementRequest(
            account_id=account_id,
            request_id=uuid.uuid4().hex,
            params_hash=fingerprint(raw),
            draft=draft,
            currency="USD",
            correlation_id=f"test-{uuid.uuid4().hex[:8]}",
        )
    )


async def order_row(pool: asyncpg.Pool, order_id: int) -> asyncpg.Record:
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
    assert row is not None
    return row


async def wait_for(check: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, interval: float = 0.1) -> T:
    """Call `check` until it returns something truthy; its last answer, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)
