"""The worker as it runs: `python -m services.worker` processes fed by the real outbox relay and RabbitMQ,
buying from the simulator subprocess. Many orders through two workers; crashes; SIGTERM; the DLQ."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest

from shared.db.accounts import ledger_mismatches
from shared.messaging import topology
from shared.messaging.connection import connect as connect_amqp
from shared.messaging.relay import OutboxRelay
from shared.ordering.placement import Placer
from shared.settings import Settings
from tests.support.factories import make_account
from tests.support.processes import settings_env
from tests.support.worker import SimProcess, WorkerProcess, order_row, place, unique_link, wait_for

PANELFLOW = Path(sys.executable).parent / "panelflow"
STALE_PARKED = "worker stopped during the upstream call: outcome unknown"
TERMINAL = ("completed", "partial", "canceled")


@pytest.fixture
async def relay(wpool: asyncpg.Pool, wsettings: Settings) -> AsyncIterator[OutboxRelay]:
    relay = OutboxRelay(wsettings, wpool)
    await relay.start()
    yield relay
    await relay.stop()


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.kill()


async def start_worker(
    started: list[WorkerProcess], settings: Settings, logs_dir: Path, name: str, **overrides: object
) -> WorkerProcess:
    worker = await WorkerProcess(settings, logs_dir / f"{name}-{uuid.uuid4().hex[:6]}.log", **overrides).started()
    started.append(worker)
    return worker


async def statuses(pool: asyncpg.Pool, ids: list[int]) -> dict[str, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT status, count(*) FROM orders WHERE id = ANY($1) GROUP BY status", ids)
    return {r["status"]: r["count"] for r in rows}


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PANELFLOW), *args], env=settings_env(settings), capture_output=True, text=True, timeout=60, check=False
    )


async def test_many_orders_through_two_workers_each_bought_once_and_all_terminal(
    wpool: asyncpg.Pool,
    wsettings: Settings,
    placer: Placer,
    catalog: dict[str, int],
    sim: SimProcess,
    relay: OutboxRelay,
    workers: list[WorkerProcess],
    logs_dir: Path,
) -> None:
    first = await start_worker(workers, wsettings, logs_dir, "w1")
    second = await start_worker(workers, wsettings, logs_dir, "w2")
    before = await sim.stats()
    accounts = [await make_account(wpool, balance="1000") for _ in range(10)]
    markers = ["", "", "", "partial:30", "canceled"]
    links = [unique_link(random.choice(markers)) for _ in range(500)]
    ids = await asyncio.gather(
        *(
            place(placer, wpool, account_id=accounts[i % 10], service_id=catalog["default"], link=link, quantity=100)
            for i, link in enumerate(links)
        )
    )

    async def all_terminal() -> bool:
        counts = await statuses(wpool, ids)
        return sum(counts.get(s, 0) for s in TERMINAL) == len(ids)

    await wait_for(all_terminal, timeout=90, interval=0.5)
    stats = await sim.stats()
    adds = [stats["adds_per_link"].get(link, 0) for link in links]
    assert adds == [1] * len(links), "every order bought exactly once"
    calls = stats["status_calls"] - before["status_calls"]
    polled = stats["status_ids_total"] - before["status_ids_total"]
    assert polled / calls > 5, f"status calls are batched ({polled} ids in {calls} calls)"
    async with wpool.acquire() as conn:
        assert await ledger_mismatches(conn) == []
        refunds_ok = await conn.fetchval(
            """
            SELECT bool_and(CASE status WHEN 'completed' THEN refunded = 0
                                        WHEN 'canceled' THEN refunded = charge
                                        ELSE refunded = round(charge * remains / quantity, 5) END)
            FROM orders WHERE id = ANY($1)
            """,
            ids,
        )
    assert refunds_ok
    # Both workers took part, and both stop cleanly and quickly on SIGTERM.
    for worker in (first, second):
        assert '"order_submitted"' in worker.log_text()
        began = time.monotonic()
        assert worker.stop(timeout=wsettings.worker_drain_s + 10) == 0
        assert time.monotonic() - began < wsettings.worker_drain_s + 5
        assert '"worker_stopped"' in worker.log_text()


async def test_worker_killed_between_upstream_answer_and_commit_parks_the_orders_and_ops_settle_them(
    wpool: asyncpg.Pool,
    wsettings: Settings,
    placer: Placer,
    catalog: dict[str, int],
    sim: SimProcess,
    relay: OutboxRelay,
    workers: list[WorkerProcess],
    logs_dir: Path,
) -> None:
    doomed = await start_worker(workers, wsettings, logs_dir, "doomed", failpoints="worker.before_record=kill")
    account = await make_account(wpool, balance="50")
    links = [unique_link() for _ in range(3)]
    ids = [
        await place(placer, wpool, account_id=account, service_id=catalog["default"], link=link, quantity=100)
        for link in links
    ]
    await wait_for(lambda: asyncio.sleep(0.1, result=not doomed.alive()), timeout=20)
    assert (await statuses(wpool, ids)).get("submitting", 0) >= 1
    await start_worker(workers, wsettings, logs_dir, "after")

    async def none_submitting() -> bool:
        return "submitting" not in await statuses(wpool, ids)

    await wait_for(none_submitting, timeout=30, interval=0.3)
    stats = await sim.stats()
    assert all(stats["adds_per_link"].get(link, 0) <= 1 for link in links), "never submitted twice"
    parked_ids = [i for i in ids if (await order_row(wpool, i))["status"] == "unknown"]
    assert parked_ids, "the orders the dead worker had bought are parked, not resubmitted"

    listed = cli(wsettings, "orders", "parked", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = {entry["order"]: entry for entry in map(json.loads, listed.stdout.splitlines())}
    assert set(parked_ids) <= set(entries)
    for order_id in parked_ids:
        # Why, and what to ask the provider about: the request_id it was sent (or, when the worker died between
        # committing the send mark and writing the request, would have been sent).
        assert entries[order_id]["error"] == "worker stopped during the upstream call: outcome unknown"
        assert entries[order_id]["request_id"].startswith(f"pf-{order_id}-")
    assert any(entries[i]["request_id"] in stats["adds_per_request_id"] for i in parked_ids)

    refunded = cli(wsettings, "orders", "resolve", "--order", str(parked_ids[0]), "--refund")
    assert refunded.returncode == 0, refunded.stderr
    assert (await order_row(wpool, parked_ids[0]))["status"] == "canceled"
    again = cli(wsettings, "orders", "resolve", "--order", str(parked_ids[0]), "--refund")
    assert again.returncode == 1
    assert "not parked" in again.stderr
    assert "Traceback" not in again.stderr
    async with wpool.acquire() as conn:
        assert await ledger_mismatches(conn) == []


async def test_worker_sigkilled_mid_run_loses_nothing_and_submits_nothing_twice(
    wpool: asyncpg.Pool,
    wsettings: Settings,
    placer: Placer,
    catalog: dict[str, int],
    sim: SimProcess,
    relay: OutboxRelay,
    workers: list[WorkerProcess],
    logs_dir: Path,
) -> None:
    worker = await start_worker(workers, wsettings, logs_dir, "victim")
    account = await make_account(wpool, balance="500")
    links = [unique_link("latency:150") for _ in range(150)]
    ids = list(
        await asyncio.gather(
            *(
                place(placer, wpool, account_id=account, service_id=catalog["default"], link=link, quantity=100)
                for link in links
            )
        )
    )
    await asyncio.sleep(random.uniform(0.3, 1.0))
    worker.kill()
    await start_worker(workers, wsettings, logs_dir, "survivor")

    async def settled() -> bool:
        counts = await statuses(wpool, ids)
        return sum(counts.get(s, 0) for s in (*TERMINAL, "unknown")) == len(ids)

    await wait_for(settled, timeout=60, interval=0.5)
    stats = await sim.stats()
    assert max(stats["adds_per_link"].get(link, 0) for link in links) == 1
    parked = (await statuses(wpool, ids)).get("unknown", 0)
    listed = cli(wsettings, "orders", "parked", "--json")
    listed_ids = {json.loads(line)["order"] for line in listed.stdout.splitlines()}
    assert len(listed_ids & set(ids)) == parked
    async with wpool.acquire() as conn:
        assert await ledger_mismatches(conn) == []


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "not-idempotent"])
async def test_three_worker_kills_under_upstream_latency_park_only_what_may_be_bought_and_buy_nothing_twice(
    wpool: asyncpg.Pool,
    wsettings: Settings,
    placer: Placer,
    catalog: dict[str, int],
    idem_catalog: dict[str, int],
    sim: SimProcess,
    relay: OutboxRelay,
    workers: list[WorkerProcess],
    logs_dir: Path,
    idempotent: bool,
) -> None:
    """kill -9 of three workers in turn, each while its upstream calls (400 ms each) are in flight. With a
    provider honouring request_id nothing parks and every order is bought exactly once; without, only orders
    whose request actually reached the provider may park, and none is sent twice."""
    services = idem_catalog if idempotent else catalog
    account = await make_account(wpool, balance="500")
    links = [unique_link("latency:400") for _ in range(150)]
    ids = list(
        await asyncio.gather(
            *(
                place(placer, wpool, account_id=account, service_id=services["default"], link=link, quantity=100)
                for link in links
            )
        )
    )

    async def requests_in_flight() -> bool:
        return bool((await sim.stats())["in_flight"] > 0)

    for round_ in range(3):
        victim = await start_worker(workers, wsettings, logs_dir, f"victim{round_}")
        await wait_for(requests_in_flight, timeout=40, interval=0.05)
        await asyncio.sleep(random.uniform(0.0, 0.3))
        victim.kill()
    await start_worker(workers, wsettings, logs_dir, "survivor")

    async def settled() -> bool:
        counts = await statuses(wpool, ids)
        return counts.get("pending", 0) + counts.get("submitting", 0) == 0

    await wait_for(settled, timeout=120, interval=0.5)
    stats = await sim.stats()
    adds = {link: stats["adds_per_link"].get(link, 0) for link in links}
    bought = {link: stats["orders_per_link"].get(link, 0) for link in links}
    async with wpool.acquire() as conn:
        rows = await conn.fetch("SELECT id, link, status, last_error FROM orders WHERE id = ANY($1)", ids)
        assert await ledger_mismatches(conn) == []
    parked = [r for r in rows if r["status"] == "unknown"]
    logs = "".join(w.log_text() for w in workers)
    assert logs.count('"order_requeued"') >= 1, "some claimed orders had not been sent when their worker died"
    if idempotent:
        assert parked == []
        assert set(bought.values()) == {1}, "every order bought exactly once upstream"
        assert all(r["status"] != "unknown" for r in rows)
    else:
        assert max(adds.values()) == 1, "no order sent twice"
        assert all(bought[r["link"]] == 1 for r in rows if r["status"] != "unknown"), "the others bought once"
        # Parked because the worker died mid-call, or (a loaded machine) because a sent request timed out.
        assert {r["last_error"] for r in parked} <= {STALE_PARKED, "outcome unknown: timeout"}
        # Only requests that may have started park: their send mark is committed once they hold one of the
        # provider's `upstream_concurrency` slots, so at most that many per kill. (Claims far beyond it were
        # never sent and went back to pending.) Most of them reached the provider; one whose worker died between
        # committing the mark and writing the request did not, and still parks: that cannot be told apart.
        died_mid_call = [r for r in parked if r["last_error"] == STALE_PARKED]
        assert len(died_mid_call) <= 3 * wsettings.upstream_concurrency


async def test_batch_events_redelivered_and_overlapping_buy_each_order_once(
    wpool: asyncpg.Pool,
    wsettings: Settings,
    placer: Placer,
    catalog: dict[str, int],
    sim: SimProcess,
    workers: list[WorkerProcess],
    logs_dir: Path,
) -> None:
    """One `order.placed` names a whole placement batch. The same batch twice, a batch overlapping it and an
    old-style single-order event for one of its orders, all at once: every order is bought exactly once."""
    account = await make_account(wpool, balance="1000")
    links = [unique_link() for _ in range(6)]
    ids = [
        await place(placer, wpool, account_id=account, service_id=catalog["default"], link=link, quantity=100)
        for link in links
    ]  # no relay runs here: the events below are the only ones the worker gets
    bodies = [
        {"order_ids": ids[:4]},
        {"order_ids": ids[:4]},
        {"order_ids": ids[2:]},
        {"order_id": ids[0]},
    ]
    connection = await connect_amqp(wsettings.amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        exchange = await topology.declare(channel, wsettings)
        for body in bodies:
            await exchange.publish(
                aio_pika.Message(json.dumps(body).encode(), message_id=str(uuid.uuid4()), type="order.placed"),
                routing_key="order.placed",
            )
    await start_worker(workers, wsettings, logs_dir, "batch-events")

    async def all_submitted() -> bool:
        counts = await statuses(wpool, ids)
        return counts.get("pending", 0) + counts.get("submitting", 0) == 0

    await wait_for(all_submitted, timeout=30, interval=0.2)
    stats = await sim.stats()
    assert [stats["adds_per_link"].get(link, 0) for link in links] == [1] * len(links)


async def test_poison_message_goes_to_the_dlq_and_can_be_replayed(
    wsettings: Settings, workers: list[WorkerProcess], logs_dir: Path
) -> None:
    await start_worker(workers, wsettings, logs_dir, "dlq")
    message_id = str(uuid.uuid4())
    connection = await connect_amqp(wsettings.amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        exchange = await topology.declare(channel, wsettings)
        await exchange.publish(
            aio_pika.Message(b'{"order_id": "not-a-number"}', message_id=message_id, type="order.placed"),
            routing_key="order.placed",
        )

    def dlq_ids() -> list[dict[str, object]]:
        listed = cli(wsettings, "dlq", "list", "--queue", "worker.orders", "--json")
        assert listed.returncode == 0, listed.stderr
        return [json.loads(line) for line in listed.stdout.splitlines()]

    async def in_dlq() -> list[dict[str, object]]:
        return [letter for letter in dlq_ids() if letter["message_id"] == message_id]

    letter = (await wait_for(in_dlq, timeout=30, interval=0.5))[0]
    assert letter["routing_key"] == "order.placed"
    assert letter["reason"] == "delivery_limit"
    assert len(await in_dlq()) == 1  # listing does not consume it

    worker = workers[-1]
    failures_before = worker.log_text().count(message_id)
    replayed = cli(wsettings, "dlq", "replay", "--queue", "worker.orders", "--message", message_id)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1" in replayed.stdout

    # Still poison: the worker got it again (more failures logged for it) and it is back in the DLQ, once.
    async def back_after_new_failures() -> bool:
        return worker.log_text().count(message_id) > failures_before and len(await in_dlq()) == 1

    await wait_for(back_after_new_failures, timeout=30, interval=0.5)
