"""The upstream client against the simulator as a real HTTP server: classification, bounds, breaker, drift."""

import asyncio
import time
from decimal import Decimal

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from shared.settings import Settings
from shared.upstream.breaker import BreakerState
from shared.upstream.client import UpstreamClient
from shared.upstream.results import (
    Accepted,
    IdError,
    NotSent,
    OrderReport,
    OutOfFunds,
    RefillAccepted,
    RefillReport,
    Refused,
    Unknown,
    UpstreamBadReply,
    UpstreamRejected,
    UpstreamUnreachable,
)
from tests.support.processes import free_port
from tests.support.sim import SimControl

LINK = "https://instagram.test/p/abc"


def order(link: str = LINK, quantity: int = 100) -> dict[str, str | int]:
    return {"service": 1, "link": link, "quantity": quantity}


def client_for(sim: SimControl, settings: Settings, key: str | None = None) -> UpstreamClient:
    return UpstreamClient(url=sim.api_url, key=key or sim.key, settings=settings, name="sim")


# --- add: each classification ----------------------------------------------------------------------------------


async def test_accepted_carries_the_upstream_order_id(sim: SimControl, client_settings: Settings) -> None:
    async with client_for(sim, client_settings) as client:
        result = await client.add(order())
    assert isinstance(result, Accepted)
    assert (await sim.order(result.provider_order_id))["link"] == LINK


async def test_definite_errors_are_refused(sim: SimControl, client_settings: Settings) -> None:
    async with client_for(sim, client_settings) as client:
        assert await client.add(order(LINK + "?sim=badlink")) == Refused("Incorrect link")
        assert await client.add({"service": 999, "link": LINK, "quantity": 100}) == Refused("Incorrect service ID")
        assert await client.add(order(quantity=1)) == Refused("Quantity less than minimal 50")
        assert await client.add({"service": 1, "link": "not a url", "quantity": 100}) == Refused("Incorrect link")
    assert (await sim.stats())["orders_created"] == 0


async def test_out_of_funds_by_marker_and_by_a_real_empty_balance(sim: SimControl, client_settings: Settings) -> None:
    async with client_for(sim, client_settings) as client:
        assert await client.add(order(LINK + "?sim=funds")) == OutOfFunds("Not enough funds on balance")
        await sim.reset(balance="0.01")
        assert await client.add(order()) == OutOfFunds("Not enough funds on balance")
        assert isinstance(await client.add({"service": 8, "link": LINK, "quantity": 100}), Accepted)  # 0.00122


async def test_turned_away_calls_are_not_sent(sim: SimControl, client_settings: Settings) -> None:
    async with client_for(sim, client_settings, key="wrong-key") as client:
        result = await client.add(order())
    assert isinstance(result, NotSent)
    assert "Invalid API key" in result.reason
    assert (await sim.stats())["orders_created"] == 0


async def test_http_429_is_not_sent(client_settings: Settings) -> None:
    async def limited(_request: web.Request) -> web.Response:
        return web.json_response({"error": "Rate limit exceeded"}, status=429)

    app = web.Application()
    app.router.add_post("/api/v2", limited)
    async with TestServer(app, host="127.0.0.1", port=free_port()) as server:
        url = str(server.make_url("/api/v2"))
        async with UpstreamClient(url=url, key="k", settings=client_settings) as client:
            result = await client.add(order())
            assert isinstance(result, NotSent)
            assert client.breaker.state is BreakerState.CLOSED  # the provider is up


async def test_connection_refused_is_not_sent(client_settings: Settings) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/v2"  # nothing listens there
    async with UpstreamClient(url=url, key="k", settings=client_settings) as client:
        result = await client.add(order())
    assert isinstance(result, NotSent)
    assert "connection failed" in result.reason


async def test_timeout_after_sending_is_unknown_and_bounded(sim: SimControl, client_settings: Settings) -> None:
    async with client_for(sim, client_settings) as client:
        started = time.monotonic()
        result = await client.add(order(LINK + "?sim=timeout"))
        elapsed = time.monotonic() - started
    assert result == Unknown("timeout")
    assert 0.5 < elapsed < 1.5  # upstream_timeout_s = 0.6, the simulator would sleep 30 s
    # The upstream did take the order: exactly why the worker must park it, not resubmit it.
    assert (await sim.stats())["orders_per_link"] == {LINK + "?sim=timeout": 1}


async def test_5xx_garbage_and_lost_replies_are_unknown(sim: SimControl, client_settings: Settings) -> None:
    settings = client_settings.model_copy(update={"upstream_breaker_failures": 10})
    async with client_for(sim, settings) as client:
        assert await client.add(order(LINK + "?sim=5xx:503")) == Unknown("http 503")
        garbage = await client.add(order(LINK + "?sim=garbage"))
        ghost = await client.add(order(LINK + "?sim=ghost"))
        ghost502 = await client.add(order(LINK + "?sim=ghost502"))
    assert isinstance(garbage, Unknown)
    assert garbage.reason.startswith("unreadable reply")
    assert isinstance(ghost, Unknown)
    assert ghost.reason.startswith("connection lost")
    assert ghost502 == Unknown("http 502")
    created = (await sim.stats())["orders_per_link"]
    assert created == {LINK + "?sim=ghost": 1, LINK + "?sim=ghost502": 1}  # the ghost orders exist upstream


async def test_unexpected_json_is_unknown(client_settings: Settings) -> None:
    async def odd(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/api/v2", odd)
    async with TestServer(app, host="127.0.0.1", port=free_port()) as server:
        client = UpstreamClient(url=str(server.make_url("/api/v2")), key="k", settings=client_settings)
        async with client:
            result = await client.add(order())
    assert isinstance(result, Unknown)
    assert "unexpected reply" in result.reason


async def test_add_sends_the_form_as_panels_expect(client_settings: Settings) -> None:
    seen: list[dict[str, str]] = []

    async def capture(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-www-form-urlencoded"
        seen.append({k: str(v) for k, v in (await request.post()).items()})
        return web.json_response({"order": "77"})  # some panels send the id as a string

    app = web.Application()
    app.router.add_post("/api/v2", capture)
    async with TestServer(app, host="127.0.0.1", port=free_port()) as server:
        client = UpstreamClient(url=str(server.make_url("/api/v2")), key="sekrit", settings=client_settings)
        async with client:
            result = await client.add({"service": 3, "link": LINK, "quantity": 100, "request_id": "pf-9"})
    assert result == Accepted("77")
    assert seen == [
        {"service": "3", "link": LINK, "quantity": "100", "request_id": "pf-9", "key": "sekrit", "action": "add"}
    ]


# --- breaker, concurrency ---------------------------------------------------------------------------------------


async def test_breaker_opens_after_failures_then_half_opens(sim: SimControl, client_settings: Settings) -> None:
    await sim.faults({"rules": [{"fault": "http_error", "status": 502}]})
    async with client_for(sim, client_settings) as client:
        for _ in range(3):
            assert await client.add(order()) == Unknown("http 502")
        assert client.breaker.state is BreakerState.OPEN
        adds_before = (await sim.stats())["adds"]
        assert await client.add(order()) == NotSent("circuit breaker open")
        with pytest.raises(UpstreamUnreachable, match="circuit breaker open"):
            await client.status(["1"])
        assert (await sim.stats())["adds"] == adds_before  # nothing reached the provider

        await asyncio.sleep(0.45)  # reset_s = 0.4: half-open, the provider is still down
        assert await client.add(order()) == Unknown("http 502")  # the probe
        assert client.breaker.state is BreakerState.OPEN
        assert await client.add(order()) == NotSent("circuit breaker open")

        await sim.faults({"rules": [{"fault": "latency", "ms": 200}]})  # the provider recovers, slowly
        await asyncio.sleep(0.45)
        results = await asyncio.gather(*(client.add(order()) for _ in range(4)))
        # Exactly one probe went through; the others were stopped while it was out.
        assert sum(isinstance(r, Accepted) for r in results) == 1
        assert sum(r == NotSent("circuit breaker open") for r in results) == 3
        assert client.breaker.state is BreakerState.CLOSED
        assert isinstance(await client.add(order()), Accepted)


async def test_refusals_do_not_open_the_breaker(sim: SimControl, client_settings: Settings) -> None:
    async with client_for(sim, client_settings) as client:
        for _ in range(5):
            assert await client.add(order(LINK + "?sim=badlink")) == Refused("Incorrect link")
        assert client.breaker.state is BreakerState.CLOSED


async def test_connection_refused_opens_the_breaker(client_settings: Settings) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/v2"
    async with UpstreamClient(url=url, key="k", settings=client_settings) as client:
        for _ in range(3):
            result = await client.add(order())
            assert isinstance(result, NotSent)
            assert result.reason.startswith("connection failed")
        assert client.breaker.state is BreakerState.OPEN
        assert await client.add(order()) == NotSent("circuit breaker open")


async def test_concurrency_limit_per_provider(sim: SimControl, client_settings: Settings) -> None:
    await sim.faults({"rules": [{"fault": "latency", "ms": 150, "action": "balance"}]})
    settings = client_settings.model_copy(update={"upstream_concurrency": 3, "upstream_timeout_s": 5.0})
    async with client_for(sim, settings) as client:
        balances = await asyncio.gather(*(client.balance() for _ in range(10)))
    assert len(balances) == 10
    assert (await sim.stats())["max_in_flight"] == 3


async def test_waiting_for_a_slot_counts_against_the_timeout(sim: SimControl, client_settings: Settings) -> None:
    await sim.faults({"rules": [{"fault": "timeout", "seconds": 5, "action": "balance"}]})
    settings = client_settings.model_copy(update={"upstream_concurrency": 1})
    async with client_for(sim, settings) as client:
        started = time.monotonic()
        results = await asyncio.gather(*(client.balance() for _ in range(3)), return_exceptions=True)
        # Queued calls do not get a fresh timeout each: three hung calls end within about one timeout (0.6 s).
        assert time.monotonic() - started < 1.0
        assert all(isinstance(r, UpstreamBadReply | UpstreamUnreachable) for r in results)


async def test_add_that_never_gets_a_slot_is_not_sent(sim: SimControl, client_settings: Settings) -> None:
    settings = client_settings.model_copy(update={"upstream_concurrency": 1})
    # The one slot is taken by a call that does not end in time.
    async with client_for(sim, settings) as client, client.transport._slots:
        assert await client.add(order()) == NotSent("no free connection slot in time")
    assert (await sim.stats())["adds"] == 0


async def test_a_queued_add_with_too_little_time_left_is_not_sent(sim: SimControl, client_settings: Settings) -> None:
    await sim.faults({"rules": [{"fault": "latency", "ms": 400, "action": "add"}]})
    settings = client_settings.model_copy(update={"upstream_concurrency": 1, "upstream_timeout_s": 0.6})
    async with client_for(sim, settings) as client:
        first, second = await asyncio.gather(client.add(order()), client.add(order()))
    # The second waited 0.4 s of its 0.6 s for the slot: sent now, it would time out after going out.
    assert isinstance(first, Accepted)
    assert second == NotSent("no free connection slot in time (too little time left to send)")
    assert (await sim.stats())["adds"] == 1


# --- before_send: the caller's last word before the request is written ----------------------------------------


async def test_before_send_runs_once_connected_and_its_reason_stops_the_request(
    sim: SimControl, client_settings: Settings
) -> None:
    calls: list[str] = []

    async def allow() -> str | None:
        calls.append("allow")
        return None

    async def refuse() -> str | None:
        calls.append("refuse")
        return "not sent: the claim is gone"

    async with client_for(sim, client_settings) as client:
        assert isinstance(await client.add(order(), before_send=allow), Accepted)
        assert await client.add(order(), before_send=refuse) == NotSent("not sent: the claim is gone")
        assert client.breaker.state is BreakerState.CLOSED  # says nothing about the provider
    assert calls == ["allow", "refuse"]
    assert (await sim.stats())["adds"] == 1  # the refused one never reached the provider


async def test_before_send_is_not_reached_when_the_connection_cannot_be_made(client_settings: Settings) -> None:
    called = False

    async def hook() -> str | None:
        nonlocal called
        called = True
        return None

    url = f"http://127.0.0.1:{free_port()}/api/v2"  # nothing listens there
    async with UpstreamClient(url=url, key="k", settings=client_settings) as client:
        result = await client.add(order(), before_send=hook)
    assert isinstance(result, NotSent)
    assert not called  # so a caller's "about to send" mark is never written for a connection that failed


# --- status, refill, cancel, balance, services -------------------------------------------------------------------


async def test_batch_status_of_100_ids_in_one_call(base_settings: Settings) -> None:
    from tests.support.sim import running_sim

    async with running_sim(base_settings, instant=True) as sim, client_for(sim, base_settings) as client:
        ids = []
        for i in range(101):
            result = await client.add(order(f"{LINK}{i}"))
            assert isinstance(result, Accepted)
            ids.append(result.provider_order_id)
        reports = await client.status(ids[:100])
        assert len(reports) == 100
        assert all(isinstance(r, OrderReport) for r in reports.values())
        assert {
            (r.status, r.charge, r.remains, r.currency) for r in reports.values() if isinstance(r, OrderReport)
        } == {("Completed", Decimal("0.09"), 0, "USD")}
        assert (await sim.stats())["status_ids_per_call"] == [100]
        reports = await client.status([*ids, "99999999"])  # 102 ids: split 100 + 2
        assert reports["99999999"] == IdError("Incorrect order ID")
        assert sum(isinstance(r, OrderReport) for r in reports.values()) == 101
        assert (await sim.stats())["status_ids_per_call"] == [100, 100, 2]


async def test_status_drift_is_normalised(sim: SimControl, client_settings: Settings) -> None:
    async with client_for(sim, client_settings) as client:
        canceled = await client.add(order(LINK + "?sim=canceled"))
        stuck = await client.add(order(LINK + "?sim=stuck"))
        assert isinstance(canceled, Accepted)
        assert isinstance(stuck, Accepted)
        await sim.advance(1)
        await sim.faults({"drift": ["cancelled", "lowercase", "in_progress_caps", "numbers_as_ints"]})
        raw = await sim.call("status", orders=f"{canceled.provider_order_id},{stuck.provider_order_id}")
        assert raw[1][canceled.provider_order_id]["status"] == "cancelled"  # the simulator really drifts
        assert raw[1][stuck.provider_order_id]["status"] == "in progress"
        assert raw[1][stuck.provider_order_id]["remains"] == 1
        reports = await client.status([canceled.provider_order_id, stuck.provider_order_id])
        gone, running = reports[canceled.provider_order_id], reports[stuck.provider_order_id]
        assert isinstance(gone, OrderReport)
        assert isinstance(running, OrderReport)
        assert (gone.status, gone.charge, gone.remains, gone.currency) == ("Canceled", Decimal("0.0"), 100, "USD")
        assert isinstance(gone.start_count, int)
        assert (running.status, running.remains) == ("In progress", 1)
        await sim.faults({"drift": ["remains_unknown"]})
        unknown = (await client.status([stuck.provider_order_id]))[stuck.provider_order_id]
        assert isinstance(unknown, OrderReport)
        assert unknown.remains is None


async def test_status_failures_raise(sim: SimControl, client_settings: Settings) -> None:
    async with client_for(sim, client_settings) as client:
        await sim.faults({"rules": [{"fault": "garbage", "action": "status", "times": 1}]})
        with pytest.raises(UpstreamBadReply, match="unreadable reply"):
            await client.status(["1"])
    async with client_for(sim, client_settings, key="bad") as client:
        with pytest.raises(UpstreamRejected, match="Invalid API key"):
            await client.status(["1"])


async def test_refill_refill_status_cancel_balance_services(sim: SimControl, client_settings: Settings) -> None:
    async with client_for(sim, client_settings) as client:
        done = await client.add(order())
        rejected = await client.add(order(LINK + "?sim=refill_rejected"))
        running = await client.add(order(LINK + "?sim=stuck"))
        no_refill = await client.add({"service": 2, "link": LINK, "quantity": 100})
        assert all(isinstance(r, Accepted) for r in (done, rejected, running, no_refill))
        assert isinstance(done, Accepted)
        assert isinstance(rejected, Accepted)
        assert isinstance(running, Accepted)
        assert isinstance(no_refill, Accepted)
        await sim.advance(1)

        refill = await client.refill(done.provider_order_id)
        refill_rejected = await client.refill(rejected.provider_order_id)
        assert isinstance(refill, RefillAccepted)
        assert isinstance(refill_rejected, RefillAccepted)
        assert await client.refill(no_refill.provider_order_id) == Refused("Refill is disabled for this service")
        assert await client.refill("424242") == Refused("Incorrect order ID")
        await sim.advance(1)
        statuses = await client.refill_status([refill.provider_refill_id, refill_rejected.provider_refill_id, "9"])
        assert statuses == {
            refill.provider_refill_id: RefillReport("Completed"),
            refill_rejected.provider_refill_id: RefillReport("Rejected"),
            "9": IdError("Refill not found"),
        }

        cancels = await client.cancel([running.provider_order_id, done.provider_order_id, "9"])
        assert cancels[running.provider_order_id] is True
        assert cancels[done.provider_order_id] == IdError("Order is already finished")
        assert cancels["9"] == IdError("Incorrect order ID")
        report = (await client.status([running.provider_order_id]))[running.provider_order_id]
        assert isinstance(report, OrderReport)
        assert report.status == "Partial"

        balance = await client.balance()
        assert balance.currency == "USD"
        assert balance.amount == Decimal("1000000") - Decimal("0.09") * 3 - Decimal("0.035")
        catalog = await client.services()
        assert [s.service for s in catalog.services] == [str(i) for i in range(1, 9)]
        assert catalog.skipped == []
