"""Each fault class of the simulator and the state it leaves an order in; exactly-once submission and
refunds under duplicates and races; parked orders; drift."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from shared.db import accounts as accounts_sql
from shared.db import catalog as catalog_sql
from shared.db.accounts import balance_of
from shared.db.orders import reads as reads_sql
from shared.db.orders import submission as submission_sql
from shared.domain.lifecycle import upstream_add_params, upstream_request_id
from shared.observability import metrics
from shared.ordering.placement import Placer
from shared.settings import Settings
from shared.upstream.client import UpstreamClient
from shared.upstream.results import Accepted, OrderReport
from shared.worker.polling import Poller
from shared.worker.sending import SendMarks
from tests.support.factories import make_account, make_provider
from tests.support.processes import free_port
from tests.support.worker import SimProcess, order_row, place, unique_link, wait_for
from tests.worker.components import Parts, worker_parts

pytestmark = pytest.mark.usefixtures("ledger_clean")


@pytest.fixture
async def parts(wpool: asyncpg.Pool, wsettings: Settings, sim: SimProcess) -> AsyncIterator[Parts]:
    async with worker_parts(wpool, wsettings) as parts:
        yield parts
    await sim.faults()  # whatever a test switched on


async def place_default(placer: Placer, pool: asyncpg.Pool, catalog: dict[str, int], link: str) -> int:
    account = await make_account(pool, balance="10")
    return await place(placer, pool, account_id=account, service_id=catalog["default"], link=link, quantity=100)


@pytest.mark.parametrize("marker", ["timeout", "5xx", "5xx:503", "garbage", "ghost", "ghost502", "drop"])
async def test_outcome_unknown_after_sending_parks_the_order_and_never_resubmits(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess, marker: str
) -> None:
    link = unique_link(marker)
    order_id = await place_default(placer, wpool, catalog, link)
    await parts.submitter.submit_named([order_id])
    row = await order_row(wpool, order_id)
    assert row["status"] == "unknown"
    assert row["last_error"].startswith("outcome unknown")
    assert row["refunded"] == 0  # the money stays reserved: the upstream may be delivering
    async with wpool.acquire() as conn:
        assert order_id in [p.id for p in await reads_sql.list_parked(conn)]
    # Neither a redelivered message nor the sweeper sends it again.
    await parts.submitter.submit_named([order_id])
    await parts.sweeper.sweep()
    assert (await sim.stats())["adds_per_link"][link] == 1
    assert (await order_row(wpool, order_id))["status"] == "unknown"


async def test_ghost_order_exists_upstream_while_parked(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess
) -> None:
    link = unique_link("ghost")
    order_id = await place_default(placer, wpool, catalog, link)
    await parts.submitter.submit_named([order_id])
    stats = await sim.stats()
    # The upstream created it although we never heard back: resubmitting would buy it twice.
    assert stats["orders_per_link"][link] == 1
    assert (await order_row(wpool, order_id))["status"] == "unknown"


async def test_out_of_funds_stays_pending_and_is_retried_with_backoff(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess
) -> None:
    link = unique_link()
    order_id = await place_default(placer, wpool, catalog, link)
    await sim.faults([{"fault": "out_of_funds", "action": "add", "times": 2}])
    await parts.submitter.submit_named([order_id])
    row = await order_row(wpool, order_id)
    assert (row["status"], row["submit_attempts"]) == ("pending", 1)
    assert "OutOfFunds" in row["last_error"]
    assert row["next_attempt_at"] is not None
    # Not due yet: nothing happens. Then due: retried (second failure doubles the delay), then bought.
    await parts.submitter.submit_due()
    assert (await order_row(wpool, order_id))["submit_attempts"] == 1

    async def attempts_reached(n: int) -> bool:
        await parts.submitter.submit_due()
        return bool((await order_row(wpool, order_id))["submit_attempts"] >= n)

    await wait_for(lambda: attempts_reached(2), timeout=5)
    second = await order_row(wpool, order_id)
    assert second["status"] == "pending"
    assert (second["next_attempt_at"] - second["updated_at"]).total_seconds() >= 0.9  # 0.5 s doubled
    await wait_for(lambda: attempts_reached(3), timeout=5)
    assert (await order_row(wpool, order_id))["status"] == "in_progress"
    assert (await sim.stats())["orders_per_link"][link] == 1


async def test_connection_refused_is_not_sent_and_stays_pending(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, wsettings: Settings
) -> None:
    async with wpool.acquire() as conn:
        dead = await make_provider(
            conn, name=f"dead-{free_port()}", url=f"http://127.0.0.1:{free_port()}/api/v2", key="k"
        )
        service = await catalog_sql.add_service(
            conn, name="dead", type="Default", rate=Decimal(1), min_quantity=1, max_quantity=100,
            provider_id=dead, provider_service_id="1",
        )  # fmt: skip
    account = await make_account(wpool, balance="1")
    order_id = await place(placer, wpool, account_id=account, service_id=service, link=unique_link(), quantity=10)
    await parts.submitter.submit_named([order_id])
    row = await order_row(wpool, order_id)
    assert row["status"] == "pending"
    assert "NotSent" in row["last_error"]
    # Park it out of the way of later sweeps (it can never be bought): an operator refunds it.
    async with wpool.acquire() as conn:
        await conn.execute("UPDATE orders SET status = 'unknown' WHERE id = $1", order_id)
    from shared.worker import parked

    await parked.refund(wpool, order_id=order_id)
    assert (await order_row(wpool, order_id))["refunded"] == Decimal("0.01000")


async def test_duplicate_and_concurrent_order_placed_submit_once(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess, wsettings: Settings
) -> None:
    link = unique_link("latency:300")
    order_id = await place_default(placer, wpool, catalog, link)
    async with worker_parts(wpool, wsettings) as other:
        counts = await asyncio.gather(
            parts.submitter.submit_named([order_id]),
            other.submitter.submit_named([order_id]),
            parts.submitter.submit_named([order_id, order_id]),
            other.sweeper.sweep(),
        )
    assert sorted(counts[:3]) == [0, 0, 1]  # one claim won; the others found it no longer pending
    await parts.submitter.submit_named([order_id])  # a redelivery after the fact
    assert (await sim.stats())["adds_per_link"][link] == 1
    assert (await order_row(wpool, order_id))["status"] == "in_progress"


async def test_order_cancelled_by_the_api_before_the_worker_is_ignored(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess
) -> None:
    from shared.db.orders.locks import lock_account_order
    from shared.ordering.cancel import cancel_unsent

    link = unique_link()
    order_id = await place_default(placer, wpool, catalog, link)
    row = await order_row(wpool, order_id)
    async with wpool.acquire() as conn, conn.transaction():
        locked = await lock_account_order(conn, account_id=row["account_id"], order_id=order_id)
        assert locked is not None
        await cancel_unsent(conn, locked.view, correlation_id=None)
    assert await parts.submitter.submit_named([order_id]) == 0
    assert link not in (await sim.stats())["adds_per_link"]
    assert (await order_row(wpool, order_id))["status"] == "canceled"


async def _claim_as_a_worker_that_then_dies(pool: asyncpg.Pool, order_id: int) -> submission_sql.Submission:
    async with pool.acquire() as conn, conn.transaction():
        claimed = await submission_sql.claim_named(conn, [order_id])
    assert [s.id for s in claimed] == [order_id]
    return claimed[0]


async def _sweep_after_the_timeout(pool: asyncpg.Pool, settings: Settings) -> dict[str, int]:
    async with worker_parts(pool, settings.model_copy(update={"worker_submitting_timeout_s": 0.2})) as quick:
        await asyncio.sleep(0.3)
        return await quick.sweeper.sweep()


async def test_worker_dead_after_the_claim_before_sending_returns_the_order_to_pending_and_it_is_bought_once(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess, wsettings: Settings
) -> None:
    link = unique_link()
    order_id = await place_default(placer, wpool, catalog, link)
    await _claim_as_a_worker_that_then_dies(wpool, order_id)  # claim committed; the request never started
    requeued = metrics.SUBMISSIONS.labels(outcome="requeued")._value.get()
    await parts.sweeper.sweep()  # younger than the timeout: left alone
    assert (await order_row(wpool, order_id))["status"] == "submitting"
    done = await _sweep_after_the_timeout(wpool, wsettings)
    assert (done["parked"], done["requeued"]) == (0, 1)
    assert metrics.SUBMISSIONS.labels(outcome="requeued")._value.get() == requeued + 1
    row = await order_row(wpool, order_id)
    # Returned to pending and, the same sweep, submitted: bought once (the provider does not honour request_id).
    assert (row["status"], row["submit_attempts"]) == ("in_progress", 2)
    stats = await sim.stats()
    assert (stats["adds_per_link"][link], stats["orders_per_link"][link]) == (1, 1)


async def test_worker_dead_after_sending_parks_the_order_of_a_provider_without_idempotency(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess, wsettings: Settings
) -> None:
    link = unique_link()
    order_id = await place_default(placer, wpool, catalog, link)
    claimed = await _claim_as_a_worker_that_then_dies(wpool, order_id)
    async with wpool.acquire() as conn:  # ... and marked it as about to send: it may have gone out
        assert await submission_sql.mark_sending(conn, [(order_id, claimed.attempt)]) == {order_id}
    done = await _sweep_after_the_timeout(wpool, wsettings)
    assert (done["parked"], done["requeued"]) == (1, 0)
    row = await order_row(wpool, order_id)
    assert row["status"] == "unknown"
    assert row["last_error"] == "worker stopped during the upstream call: outcome unknown"
    await parts.sweeper.sweep()
    assert link not in (await sim.stats())["adds_per_link"]  # never sent on a guess


async def test_worker_dead_after_sending_to_an_idempotent_provider_resends_the_same_request_id_bought_once(
    parts: Parts,
    wpool: asyncpg.Pool,
    placer: Placer,
    idem_catalog: dict[str, int],
    sim: SimProcess,
    wsettings: Settings,
) -> None:
    link = unique_link()
    order_id = await place_default(placer, wpool, idem_catalog, link)
    claimed = await _claim_as_a_worker_that_then_dies(wpool, order_id)
    # The dead worker's request reached the provider (it was killed before it could record the answer).
    params = upstream_add_params(
        provider_service_id="1",
        request_id=upstream_request_id(order_id, claimed.created_us),
        link=link,
        params=claimed.params,
    )
    async with UpstreamClient(url=sim.api_url, key=wsettings.sim_key, settings=wsettings) as client:
        first = await client.add(params)
    assert isinstance(first, Accepted)
    async with wpool.acquire() as conn:
        await submission_sql.mark_sending(conn, [(order_id, claimed.attempt)])
    done = await _sweep_after_the_timeout(wpool, wsettings)
    assert (done["parked"], done["requeued"]) == (0, 1)
    row = await order_row(wpool, order_id)
    assert (row["status"], row["provider_order_id"]) == ("in_progress", first.provider_order_id)
    stats = await sim.stats()
    assert (stats["adds_per_link"][link], stats["orders_per_link"][link]) == (2, 1)  # sent twice, bought once


async def test_unknown_outcome_at_an_idempotent_provider_is_resent_not_parked(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, idem_catalog: dict[str, int], sim: SimProcess
) -> None:
    link = unique_link()
    order_id = await place_default(placer, wpool, idem_catalog, link)
    # The provider creates the order, then the reply is lost (connection dropped), once.
    await sim.faults([{"fault": "ghost", "action": "add", "times": 1}])
    await parts.submitter.submit_named([order_id])
    row = await order_row(wpool, order_id)
    assert (row["status"], row["submit_attempts"]) == ("pending", 1)
    assert row["last_error"].startswith("outcome unknown (connection lost")
    assert "the same request_id is sent again" in row["last_error"]

    async def bought() -> bool:
        await parts.submitter.submit_due()
        return bool((await order_row(wpool, order_id))["status"] == "in_progress")

    await wait_for(bought, timeout=10)
    stats = await sim.stats()
    assert (stats["adds_per_link"][link], stats["orders_per_link"][link]) == (2, 1)


async def test_a_claim_released_by_the_sweeper_is_never_sent_by_its_slow_worker(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], wsettings: Settings
) -> None:
    order_id = await place_default(placer, wpool, catalog, unique_link())
    claimed = await _claim_as_a_worker_that_then_dies(wpool, order_id)  # a slow worker, not a dead one
    await _sweep_after_the_timeout(wpool, wsettings)  # released (never sent) and bought by the sweep
    marks = SendMarks(wpool)
    assert await marks.mark(order_id, claimed.attempt) is False  # so the slow worker must not send it
    reason = await marks.before_send(order_id, claimed.attempt)()
    assert reason is not None
    assert reason.startswith("not sent")


async def test_refund_paid_once_when_the_same_status_is_seen_many_times_and_by_two_pollers_at_once(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], wsettings: Settings
) -> None:
    account = await make_account(wpool, balance="10")
    order_id = await place(
        placer, wpool, account_id=account, service_id=catalog["default"], link=unique_link("stuck"), quantity=1000
    )
    await parts.submitter.submit_named([order_id])
    partial = OrderReport(status="Partial", charge=None, start_count=5, remains=400, currency="USD")
    pollers = [Poller(wpool, parts.upstreams, wsettings) for _ in range(6)]
    await asyncio.gather(*(p.apply({order_id: partial}) for p in pollers))
    for poller in pollers:
        await poller.apply({order_id: partial})
    canceled = OrderReport(status="Canceled", charge=None, start_count=5, remains=None, currency="USD")
    await pollers[0].apply({order_id: canceled})  # a later, contradicting answer changes nothing either
    row = await order_row(wpool, order_id)
    assert (row["status"], row["refunded"]) == ("partial", Decimal("0.40000"))
    async with wpool.acquire() as conn:
        refunds = await conn.fetchval("SELECT count(*) FROM ledger WHERE order_id = $1 AND kind = 'refund'", order_id)
        partial_events = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE event_type = 'order.partial' AND (payload->>'order')::bigint = $1",
            order_id,
        )
        assert await balance_of(conn, account) == (Decimal("9.40000"), "USD")
    assert (refunds, partial_events) == (1, 1)


async def test_the_database_refuses_a_second_refund_row(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int]
) -> None:
    account = await make_account(wpool, balance="10")
    order_id = await place(
        placer, wpool, account_id=account, service_id=catalog["default"], link=unique_link("canceled"), quantity=100
    )
    await parts.submitter.submit_named([order_id])
    await wait_for(lambda: _terminal(parts, wpool, order_id), timeout=10)
    with pytest.raises(accounts_sql.RefundAlreadyPaid):
        async with wpool.acquire() as conn, conn.transaction():
            await accounts_sql.pay_refunds(conn, [accounts_sql.Refund(order_id, account, Decimal("0.01"), "again")])


async def _terminal(parts: Parts, pool: asyncpg.Pool, order_id: int) -> bool:
    await parts.poller.poll_once()
    return (await order_row(pool, order_id))["status"] in ("completed", "partial", "canceled")


@pytest.mark.parametrize(
    ("drift", "marker", "status", "refunded"),
    [
        (["cancelled", "numbers_as_ints"], "canceled", "canceled", Decimal("0.10000")),
        (["lowercase", "in_progress_caps"], "partial:25", "partial", Decimal("0.02500")),
        (["lowercase", "numbers_as_ints"], "", "completed", Decimal("0")),
    ],
)
async def test_status_drift_is_normalised(
    parts: Parts,
    wpool: asyncpg.Pool,
    placer: Placer,
    catalog: dict[str, int],
    sim: SimProcess,
    drift: list[str],
    marker: str,
    status: str,
    refunded: Decimal,
) -> None:
    order_id = await place_default(placer, wpool, catalog, unique_link(marker))
    await parts.submitter.submit_named([order_id])
    await sim.faults(drift=drift)
    await wait_for(lambda: _terminal(parts, wpool, order_id), timeout=10)
    row = await order_row(wpool, order_id)
    assert (row["status"], row["refunded"]) == (status, refunded)


async def test_partial_with_remains_unknown_waits_for_readable_remains(
    parts: Parts, wpool: asyncpg.Pool, placer: Placer, catalog: dict[str, int], sim: SimProcess
) -> None:
    order_id = await place_default(placer, wpool, catalog, unique_link("partial:40"))
    await parts.submitter.submit_named([order_id])
    await sim.faults(drift=["remains_unknown"])

    async def held() -> bool:
        await parts.poller.poll_once()
        return (await order_row(wpool, order_id))["last_error"] == "Partial without remains"

    await wait_for(held, timeout=10)
    assert (await order_row(wpool, order_id))["status"] == "in_progress"
    await sim.faults()
    await wait_for(lambda: _terminal(parts, wpool, order_id), timeout=10)
    row = await order_row(wpool, order_id)
    assert (row["status"], row["remains"], row["refunded"]) == ("partial", 40, Decimal("0.04000"))
