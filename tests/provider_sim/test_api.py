"""The simulator speaks API v2 as an upstream panel does: shapes of every action, progress, outcomes."""

import aiohttp

from shared.settings import Settings
from tests.support.sim import SimControl, running_sim

LINK = "https://instagram.test/p/xyz"


async def add(sim: SimControl, link: str = LINK, quantity: int = 1000, service: int = 1, **extra: str) -> int:
    status, body = await sim.call("add", service=service, link=link, quantity=quantity, **extra)
    assert status == 200
    assert set(body) == {"order"}, body
    assert isinstance(body["order"], int)
    return int(body["order"])


async def status_of(sim: SimControl, order_id: int) -> dict:
    _, body = await sim.call("status", order=order_id)
    return body


async def test_services_shape(sim: SimControl) -> None:
    status, services = await sim.call("services")
    assert status == 200
    assert len(services) >= 6
    first = services[0]
    assert set(first) == {"service", "name", "type", "category", "rate", "min", "max", "refill", "cancel", "dripfeed"}
    assert isinstance(first["service"], int)
    assert isinstance(first["rate"], str)
    assert isinstance(first["refill"], bool)
    assert {"Default", "Package", "Custom Comments"} <= {s["type"] for s in services}
    default = next(s for s in services if s["type"] == "Default" and s["refill"] and s["cancel"] and s["dripfeed"])
    assert default["min"] == "50"


async def test_status_single_shape_and_progress_to_completed(sim: SimControl) -> None:
    order_id = await add(sim, quantity=1000)
    body = await status_of(sim, order_id)
    assert set(body) == {"charge", "start_count", "status", "remains", "currency"}
    assert body["status"] == "Pending"
    assert body["remains"] == "1000"
    assert body["charge"] == "0.90"
    assert body["start_count"].isdigit()
    assert body["currency"] == "USD"
    await sim.advance(5.5)  # halfway through the running phase
    body = await status_of(sim, order_id)
    assert body["status"] == "In progress"
    assert 0 < int(body["remains"]) < 1000
    await sim.advance(5)
    body = await status_of(sim, order_id)
    assert (body["status"], body["remains"], body["charge"]) == ("Completed", "0", "0.90")


async def test_partial_and_canceled_outcomes_by_marker(sim: SimControl) -> None:
    partial = await add(sim, LINK + "?sim=partial:157", quantity=1000)
    partial_default = await add(sim, LINK + "?sim=partial", quantity=1000)
    canceled = await add(sim, LINK + "?sim=canceled", quantity=1000)
    await sim.advance(11)
    body = await status_of(sim, partial)
    assert (body["status"], body["remains"], body["charge"]) == ("Partial", "157", "0.7587")
    assert (await status_of(sim, partial_default))["remains"] == "250"
    body = await status_of(sim, canceled)
    assert (body["status"], body["remains"], body["charge"]) == ("Canceled", "1000", "0.00")


async def test_batch_status_with_a_bad_id(sim: SimControl) -> None:
    a, b = await add(sim), await add(sim)
    _, body = await sim.call("status", orders=f"{a},{b},99,abc")
    assert set(body) == {str(a), str(b), "99", "abc"}
    assert body[str(a)]["status"] == "Pending"
    assert body["99"] == {"error": "Incorrect order ID"}
    assert body["abc"] == {"error": "Incorrect order ID"}
    stats = await sim.stats()
    assert stats["status_calls"] == 1
    assert stats["status_ids_per_call"] == [4]


async def test_batch_is_capped_at_100_ids(sim: SimControl) -> None:
    _, body = await sim.call("status", orders=",".join(str(i) for i in range(1, 151)))
    assert len(body) == 100


async def test_cancel_batch_shape_and_effect(sim: SimControl) -> None:
    pending = await add(sim)
    running = await add(sim)
    no_cancel = await add(sim, service=8, quantity=1000)  # service 8 has cancel disabled
    await sim.advance(5.5)
    pending_late = await add(sim)
    _, body = await sim.call("cancel", orders=f"{running},{pending_late},{no_cancel},77")
    assert body == [
        {"order": running, "cancel": 1},
        {"order": pending_late, "cancel": 1},
        {"order": no_cancel, "cancel": {"error": "Cancel is disabled for this service"}},
        {"order": 77, "cancel": {"error": "Incorrect order ID"}},
    ]
    running_now = await status_of(sim, running)
    assert running_now["status"] == "Partial"
    assert 0 < int(running_now["remains"]) < 1000
    assert (await status_of(sim, pending_late))["status"] == "Canceled"
    _, again = await sim.call("cancel", order=running)
    assert again == [{"order": running, "cancel": {"error": "Cancel already requested"}}]
    assert (await status_of(sim, pending))["status"] == "In progress"


async def test_refill_and_refill_status_single_and_batch(sim: SimControl) -> None:
    done, young = await add(sim), await add(sim)
    await sim.advance(11)
    young_2 = await add(sim)
    _, body = await sim.call("refill", order=done)
    assert set(body) == {"refill"}
    assert isinstance(body["refill"], int)
    refill_id = body["refill"]
    _, batch = await sim.call("refill", orders=f"{young},{young_2},5")
    assert batch[0]["order"] == young
    assert isinstance(batch[0]["refill"], int)
    assert batch[1] == {"order": young_2, "refill": {"error": "Order is not completed yet"}}
    assert batch[2] == {"order": 5, "refill": {"error": "Incorrect order ID"}}
    _, one = await sim.call("refill_status", refill=refill_id)
    assert one == {"status": "Pending"}
    await sim.advance(11)
    _, many = await sim.call("refill_status", refills=f"{refill_id},3")
    assert many == [
        {"refill": refill_id, "status": "Completed"},
        {"refill": 3, "status": {"error": "Refill not found"}},
    ]


async def test_balance_is_charged_by_orders(sim: SimControl) -> None:
    _, before = await sim.call("balance")
    assert before == {"balance": "1000000.00", "currency": "USD"}
    await add(sim, quantity=1000)  # 0.90
    await add(sim, service=3, quantity=1)  # a package: 12.50 flat
    _, after = await sim.call("balance")
    assert after["balance"] == "999986.60"


async def test_type_specific_parameters(sim: SimControl) -> None:
    status, body = await sim.call("add", service=4, link=LINK, comments="nice\ngreat\nwow\nlove\ncool")
    assert status == 200
    assert "order" in body
    assert (await sim.order(body["order"]))["quantity"] == 5
    _, body = await sim.call("add", service=4, link=LINK, comments="too\nfew")
    assert body == {"error": "Quantity less than minimal 5"}
    _, body = await sim.call("add", service=1, link=LINK, quantity=100, runs=3, interval=10)
    assert (await sim.order(body["order"]))["quantity"] == 300


async def test_errors_are_json_with_http_200(sim: SimControl) -> None:
    assert await sim.call("add", service=1, link="ftp://nope", quantity=100) == (200, {"error": "Incorrect link"})
    assert await sim.call("add", service=404, link=LINK, quantity=100) == (200, {"error": "Incorrect service ID"})
    assert await sim.call("add", service=1, link=LINK, quantity=20000) == (
        200,
        {"error": "Quantity more than maximal 10000"},
    )
    assert await sim.call("explode") == (200, {"error": "Invalid action"})
    sim.key = "wrong"
    assert await sim.call("balance") == (200, {"error": "Invalid API key"})


async def test_get_json_and_header_key_are_accepted(sim: SimControl) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(sim.api_url, params={"key": sim.key, "action": "balance"}) as resp:
            assert (await resp.json())["currency"] == "USD"
        body = {"action": "add", "service": 1, "link": LINK, "quantity": 100}
        async with session.post(sim.api_url, json=body, headers={"X-API-Key": sim.key}) as resp:
            assert "order" in await resp.json()


async def test_request_id_makes_add_idempotent_but_every_add_is_counted(sim: SimControl) -> None:
    first = await add(sim, request_id="pf-1")
    second = await add(sim, request_id="pf-1")
    assert first == second
    stats = await sim.stats()
    assert stats["adds"] == 2
    assert stats["adds_per_request_id"] == {"pf-1": 2}
    assert stats["orders_created"] == 1
    assert stats["adds_per_link"] == {LINK: 2}
    assert stats["idempotent"] is True


async def test_a_sim_told_not_to_honour_request_ids_creates_an_order_per_add(sim: SimControl) -> None:
    await sim.reset(idempotent=False)
    first = await add(sim, request_id="pf-1")
    second = await add(sim, request_id="pf-1")
    assert first != second
    stats = await sim.stats()
    assert (stats["idempotent"], stats["orders_created"], stats["adds_per_request_id"]) == (False, 2, {"pf-1": 2})
    await sim.reset()  # back to the setting's default
    assert (await sim.stats())["idempotent"] is True


async def test_the_setting_turns_request_id_dedupe_off(base_settings: Settings) -> None:
    async with running_sim(base_settings, idempotent=False) as sim:
        assert await add(sim, request_id="pf-9") != await add(sim, request_id="pf-9")


async def test_instant_mode_completes_on_creation(base_settings: Settings) -> None:
    async with running_sim(base_settings, instant=True) as sim:
        order_id = await add(sim)
        assert (await status_of(sim, order_id))["status"] == "Completed"


async def test_outcome_mix_is_seeded(base_settings: Settings) -> None:
    outcomes = []
    for _ in range(2):
        mix = {"completed": 1.0, "partial": 1.0, "canceled": 1.0}
        async with running_sim(base_settings, instant=True, outcome_mix=mix, seed=7) as sim:
            ids = [await add(sim, f"{LINK}/{i}") for i in range(30)]
            _, body = await sim.call("status", orders=",".join(map(str, ids)))
            outcomes.append([body[str(i)]["status"] for i in ids])
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {"Completed", "Partial", "Canceled"}


async def test_reset_clears_orders_and_counters(sim: SimControl) -> None:
    order_id = await add(sim)
    await sim.reset(instant=True)
    assert await status_of(sim, order_id) == {"error": "Incorrect order ID"}
    stats = await sim.stats()
    assert stats["adds"] == 0
    assert stats["orders_created"] == 0
    assert (await status_of(sim, await add(sim)))["status"] == "Completed"  # the override took


async def test_catalog_can_be_replaced(sim: SimControl) -> None:
    await sim.set_catalog([{"service": 42, "name": "Only", "type": "Default", "rate": "1.5", "min": 10, "max": 20}])
    _, services = await sim.call("services")
    assert [(s["service"], s["rate"], s["min"], s["max"]) for s in services] == [(42, "1.50", "10", "20")]


async def test_unicode_digit_forms_are_no_ids(sim: SimControl) -> None:
    # "²".isdigit() is true but int("²") fails: the simulator reads ids with shared.domain.bounds, as we do.
    for text in ("²", "٣", "１", "9" * 30):
        assert await sim.call("status", order=text) == (200, {"error": "Incorrect order ID"})
        assert await sim.call("add", service=text, link=LINK, quantity=100) == (200, {"error": "Incorrect service ID"})
        status, body = await sim.call("status", orders=f"{text},1")
        assert (status, body[text]) == (200, {"error": "Incorrect order ID"})
