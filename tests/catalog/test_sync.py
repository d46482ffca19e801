"""Catalog sync against the simulator over HTTP and the real database (and the api, for order prices)."""

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from shared.catalog.sync import SyncError, sync_provider
from shared.db import catalog
from shared.settings import Settings
from shared.upstream.results import UpstreamUnreachable
from tests.support.factories import make_customer, make_provider
from tests.support.processes import ROOT, ApiProcess, free_port, settings_env
from tests.support.sim import SimControl, running_sim

PANELFLOW = Path(sys.executable).parent / "panelflow"


@pytest.fixture
async def sim(base_settings: Settings) -> AsyncIterator[SimControl]:
    async with running_sim(base_settings) as control:
        yield control


@pytest.fixture
async def provider_id(pool: asyncpg.Pool, sim: SimControl) -> int:
    async with pool.acquire() as conn:
        return await make_provider(conn, name=f"sim-{uuid.uuid4().hex[:8]}", url=sim.api_url, key=sim.key)


async def sync(pool: asyncpg.Pool, settings: Settings, provider_id: int, markup: str | None = None):
    async with pool.acquire() as conn:
        return await sync_provider(conn, settings, provider_id, markup_pct=None if markup is None else Decimal(markup))


async def services_of(pool: asyncpg.Pool, provider_id: int) -> dict[str, catalog.ServiceRow]:
    async with pool.acquire() as conn:
        return {str(s.provider_service_id): s for s in await catalog.provider_services(conn, provider_id)}


async def test_import_brings_every_field_and_notifies(
    pool: asyncpg.Pool, settings: Settings, sim: SimControl, provider_id: int
) -> None:
    notified: asyncio.Queue[str] = asyncio.Queue()

    def on_notify(*args: object) -> None:
        notified.put_nowait(str(args[2]))

    async with pool.acquire() as listener:
        await listener.add_listener("panelflow_catalog", on_notify)
        try:
            summary = await sync(pool, settings, provider_id)
            assert await asyncio.wait_for(notified.get(), timeout=5) == "panelflow_catalog"
        finally:
            await listener.remove_listener("panelflow_catalog", on_notify)
    assert summary.added == [str(i) for i in range(1, 9)]
    assert summary.updated == summary.deactivated == summary.skipped == []
    rows = await services_of(pool, provider_id)
    followers = rows["1"]
    assert (followers.type, followers.category, followers.min_quantity, followers.max_quantity) == (
        "Default", "Instagram", 50, 10_000,
    )  # fmt: skip
    assert (followers.refill, followers.cancel, followers.dripfeed, followers.active) == (True, True, True, True)
    assert (followers.cost_rate, followers.rate) == (Decimal("0.90"), Decimal("1.08"))  # default markup 20 %
    assert rows["8"].cost_rate == Decimal("0.01215")
    assert rows["8"].rate == Decimal("0.01458")
    assert rows["3"].type == "Package"


async def test_markup_rounding(pool: asyncpg.Pool, settings: Settings, sim: SimControl, provider_id: int) -> None:
    await sync(pool, settings, provider_id, markup="33.3")
    rows = await services_of(pool, provider_id)
    assert rows["1"].rate == Decimal("1.19970")  # 0.90 x 1.333
    assert rows["8"].rate == Decimal("0.01620")  # 0.01215 x 1.333 = 0.01619595, half-up at 5 places
    assert rows["3"].rate == Decimal("16.66250")


async def test_refresh_updates_adds_and_deactivates(
    pool: asyncpg.Pool, settings: Settings, sim: SimControl, provider_id: int
) -> None:
    await sync(pool, settings, provider_id, markup="10")
    await sim.set_catalog([
        {"service": 1, "name": "Followers v2", "type": "Default", "category": "Instagram", "rate": "1.00",
         "min": 100, "max": 5000, "refill": False, "cancel": True, "dripfeed": True},
        {"service": 2, "name": "Instagram Likes [No refill]", "type": "Default", "category": "Instagram",
         "rate": "0.35", "min": 10, "max": 50000, "refill": False, "cancel": True, "dripfeed": True},
        {"service": 9, "name": "New one", "type": "Poll", "category": "Telegram", "rate": "2.5", "min": 1, "max": 9},
        {"service": 10, "name": "Weird", "type": "Teleport", "rate": "1", "min": 1, "max": 2},
    ])  # fmt: skip
    summary = await sync(pool, settings, provider_id)
    assert summary.updated == ["1"]
    assert summary.unchanged == ["2"]
    assert summary.added == ["9"]
    assert summary.deactivated == ["3", "4", "5", "6", "7", "8"]
    assert len(summary.skipped) == 1
    rows = await services_of(pool, provider_id)
    one = rows["1"]
    assert (one.name, one.min_quantity, one.max_quantity, one.refill, one.cost_rate) == (
        "Followers v2", 100, 5000, False, Decimal("1.00"),
    )  # fmt: skip
    assert one.rate == Decimal("0.99")  # no --markup: the sell rate stays (now below cost, and said so)
    assert summary.below_cost == ["1"]
    assert rows["9"].rate == Decimal("3.00")  # new: default markup
    assert [k for k, r in rows.items() if not r.active] == ["3", "4", "5", "6", "7", "8"]
    async with pool.acquire() as conn:
        active_ids = {s.id for s in await catalog.active_services(conn)}
    assert rows["3"].id not in active_ids
    assert rows["9"].id in active_ids

    again = await sync(pool, settings, provider_id)
    assert again.unchanged == ["1", "2", "9"]
    assert again.added == again.updated == again.deactivated == []


async def test_an_empty_catalog_changes_nothing(
    pool: asyncpg.Pool, settings: Settings, sim: SimControl, provider_id: int
) -> None:
    await sync(pool, settings, provider_id)
    await sim.set_catalog([])
    with pytest.raises(SyncError, match="no service that can be sold"):
        await sync(pool, settings, provider_id)
    assert all(row.active for row in (await services_of(pool, provider_id)).values())


async def test_unreachable_provider_and_unknown_provider(pool: asyncpg.Pool, settings: Settings) -> None:
    async with pool.acquire() as conn:
        dead = await make_provider(
            conn, name=f"dead-{uuid.uuid4().hex[:8]}", url=f"http://127.0.0.1:{free_port()}/api/v2", key="k"
        )
    with pytest.raises(UpstreamUnreachable):
        await sync(pool, settings, dead)
    with pytest.raises(SyncError, match="not found"):
        await sync(pool, settings, 987654321)


async def test_orders_keep_the_price_they_were_placed_at(
    pool: asyncpg.Pool, settings: Settings, api: ApiProcess, sim: SimControl, provider_id: int
) -> None:
    await sync(pool, settings, provider_id, markup="10")
    service_id = (await services_of(pool, provider_id))["1"].id  # sells at 0.99 per 1000
    _, key = await make_customer(pool, balance="100")
    async with aiohttp.ClientSession() as http:

        async def call(action: str, **params: object) -> dict:
            form = {"key": key, "action": action, **{k: str(v) for k, v in params.items()}}
            async with http.post(api.url + "/api/v2", data=form) as resp:
                return await resp.json()

        async def wait_for_rate(rate: str) -> None:
            for _ in range(100):
                if any(s["service"] == service_id and s["rate"] == rate for s in await call("services")):
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"the api never showed rate {rate}")

        await wait_for_rate("0.99")
        before = await call("add", service=service_id, link="https://x.test/p?sim=stuck", quantity=1000,
                            request_id=uuid.uuid4().hex)  # fmt: skip
        assert "order" in before, before

        await sync(pool, settings, provider_id, markup="50")  # reprice: 1.35 per 1000
        await wait_for_rate("1.35")
        after = await call("add", service=service_id, link="https://x.test/q?sim=stuck", quantity=1000,
                           request_id=uuid.uuid4().hex)  # fmt: skip
        assert "order" in after, after

    async with pool.acquire() as conn:
        old = await conn.fetchrow("SELECT rate, charge FROM orders WHERE id = $1", before["order"])
        new = await conn.fetchrow("SELECT rate, charge FROM orders WHERE id = $1", after["order"])
    assert old is not None
    assert new is not None
    assert (old["rate"], old["charge"]) == (Decimal("0.99"), Decimal("0.99"))
    assert (new["rate"], new["charge"]) == (Decimal("1.35"), Decimal("1.35"))


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PANELFLOW), *args], cwd=ROOT, env=settings_env(settings), capture_output=True, text=True, timeout=60
    )


async def test_cli_prints_a_summary(settings: Settings, sim: SimControl, provider_id: int) -> None:
    first = await asyncio.to_thread(run_cli, settings, "services", "sync", "--provider", str(provider_id))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == (
        f"provider {provider_id}: 8 added, 0 updated, 0 unchanged, 0 deactivated, 0 skipped"
    )
    second = await asyncio.to_thread(
        run_cli, settings, "services", "sync", "--provider", str(provider_id), "--markup", "5"
    )
    assert second.returncode == 0, second.stderr
    assert f"provider {provider_id}: 0 added, 8 updated" in second.stdout


async def test_cli_errors_are_one_line(settings: Settings) -> None:
    missing = await asyncio.to_thread(run_cli, settings, "services", "sync", "--provider", "987654321")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "panelflow: error: provider 987654321 not found"
    negative = await asyncio.to_thread(run_cli, settings, "services", "sync", "--provider", "1", "--markup", "-5")
    assert negative.returncode == 2
    assert "must not be negative" in negative.stderr
