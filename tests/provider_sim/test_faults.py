"""Faults switched on through the control API or per call by link markers, and the counters tests rely on."""

import asyncio

import aiohttp
import pytest

from tests.support.sim import SimControl

LINK = "https://instagram.test/p/f"


async def raw_post(sim: SimControl, timeout: float = 5.0, **params: object) -> tuple[int, str]:
    form = {"key": sim.key, **{k: str(v) for k, v in params.items()}}
    async with (
        aiohttp.ClientSession() as session,
        session.post(sim.api_url, data=form, timeout=aiohttp.ClientTimeout(total=timeout)) as resp,
    ):
        return resp.status, await resp.text()


async def test_rule_with_times_fires_exactly_that_often(sim: SimControl) -> None:
    await sim.faults({"rules": [{"fault": "out_of_funds", "action": "add", "times": 2}]})
    answers = [(await sim.call("add", service=1, link=LINK, quantity=100))[1] for _ in range(3)]
    assert answers[:2] == [{"error": "Not enough funds on balance"}] * 2
    assert "order" in answers[2]
    assert (await sim.stats())["faults_fired"] == {"out_of_funds": 2}


async def test_rule_only_hits_its_action(sim: SimControl) -> None:
    await sim.faults({"rules": [{"fault": "incorrect_link", "action": "add"}]})
    assert (await sim.call("balance"))[1]["currency"] == "USD"
    assert (await sim.call("add", service=1, link=LINK, quantity=100))[1] == {"error": "Incorrect link"}


async def test_rate_is_a_seeded_probability(sim: SimControl) -> None:
    await sim.faults({"rules": [{"fault": "http_error", "action": "balance", "rate": 0.5}]})
    codes = [(await sim.call("balance"))[0] for _ in range(60)]
    assert 10 < codes.count(500) < 50
    assert codes.count(200) == 60 - codes.count(500)


async def test_http_error_and_garbage(sim: SimControl) -> None:
    await sim.faults({"rules": [{"fault": "http_error", "status": 503, "times": 1}, {"fault": "garbage"}]})
    status, text = await raw_post(sim, action="balance")
    assert status == 503
    assert text.startswith("<html>")
    status, text = await raw_post(sim, action="balance")
    assert status == 200
    assert text.startswith("<html>")


async def test_latency(sim: SimControl) -> None:
    await sim.faults({"rules": [{"fault": "latency", "ms": 300}]})
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await sim.call("balance"))[0] == 200
    assert loop.time() - started >= 0.3


async def test_timeout_outlasts_the_caller_and_still_creates_the_add(sim: SimControl) -> None:
    await sim.faults({"rules": [{"fault": "timeout", "seconds": 30, "action": "add"}]})
    with pytest.raises(TimeoutError):
        await raw_post(sim, timeout=0.5, action="add", service=1, link=LINK, quantity=100)
    stats = await sim.stats()
    assert stats["orders_created"] == 1
    assert stats["faults_fired"] == {"timeout": 1}
    await asyncio.sleep(0.2)
    assert (await sim.stats())["in_flight"] == 0  # the handler noticed the caller left


async def test_ghost_order_is_created_but_the_reply_is_lost(sim: SimControl) -> None:
    await sim.faults({"rules": [{"fault": "ghost", "action": "add", "times": 1}]})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await raw_post(sim, action="add", service=1, link=LINK, quantity=100)
    status, _ = await raw_post(sim, action="add", service=1, link=LINK + "?sim=ghost502", quantity=100)
    assert status == 502
    stats = await sim.stats()
    assert stats["orders_created"] == 2
    assert stats["adds"] == 2


async def test_drop_creates_nothing(sim: SimControl) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await raw_post(sim, action="add", service=1, link=LINK + "?sim=drop", quantity=100)
    assert (await sim.stats())["orders_created"] == 0


@pytest.mark.parametrize(
    ("marker", "expected"),
    [("funds", {"error": "Not enough funds on balance"}), ("badlink", {"error": "Incorrect link"})],
)
async def test_error_markers(sim: SimControl, marker: str, expected: dict) -> None:
    assert (await sim.call("add", service=1, link=f"{LINK}?sim={marker}", quantity=100))[1] == expected
    assert (await sim.stats())["orders_created"] == 0


async def test_drift(sim: SimControl) -> None:
    ids = []
    for marker in ("canceled", "stuck", "completed"):
        ids.append((await sim.call("add", service=1, link=f"{LINK}?sim={marker}", quantity=100))[1]["order"])
    await sim.advance(20)
    await sim.faults({"drift": ["cancelled", "in_progress_caps", "numbers_as_ints"]})
    _, body = await sim.call("status", orders=",".join(map(str, ids)))
    canceled, stuck, completed = (body[str(i)] for i in ids)
    assert canceled["status"] == "Cancelled"
    assert stuck["status"] == "In Progress"
    assert completed["status"] == "Completed"
    assert completed["remains"] == 0
    assert isinstance(completed["charge"], float)
    await sim.faults({"drift": ["lowercase", "remains_unknown"]})
    _, body = await sim.call("status", orders=",".join(map(str, ids)))
    assert [body[str(i)]["status"] for i in ids] == ["canceled", "in progress", "completed"]
    assert {body[str(i)]["remains"] for i in ids} == {"Unknown"}


async def test_bad_fault_plan_is_refused(sim: SimControl) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(sim.base_url + "/_sim/faults", json={"rules": [{"fault": "meteor"}]}) as resp:
            assert resp.status == 400
            assert "unknown fault" in (await resp.json())["error"]
        async with session.post(sim.base_url + "/_sim/faults", json={"drift": ["sideways"]}) as resp:
            assert resp.status == 400


async def test_stats_count_adds_per_link_and_concurrency(sim: SimControl) -> None:
    await sim.faults({"rules": [{"fault": "latency", "ms": 200, "action": "add"}]})
    links = [f"{LINK}/{i % 3}" for i in range(6)]
    await asyncio.gather(*(sim.call("add", service=1, link=link, quantity=100) for link in links))
    stats = await sim.stats()
    assert stats["adds_per_link"] == {f"{LINK}/0": 2, f"{LINK}/1": 2, f"{LINK}/2": 2}
    assert stats["orders_per_link"] == stats["adds_per_link"]
    assert stats["calls"]["add"] == 6
    assert stats["max_in_flight"] == 6
    assert stats["in_flight"] == 0
