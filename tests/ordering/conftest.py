"""Fixtures of the placement tests: a Default service priced so that a charge equals the quantity."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from shared.db.catalog import get_service
from shared.domain.order_types import ServiceTerms, draft_order, fingerprint
from shared.ordering.outcomes import PlacementRequest
from shared.ordering.placement import Placer
from shared.settings import Settings
from tests.support.factories import make_service


@pytest.fixture(scope="session")
async def terms(pool: asyncpg.Pool) -> ServiceTerms:
    # rate 1000 per 1000 units: an order of quantity q costs exactly q.
    service_id = await make_service(pool, rate="1000", min_quantity=1, max_quantity=1_000_000)
    async with pool.acquire() as conn:
        row = await get_service(conn, service_id)
    assert row is not None
    return ServiceTerms(row.id, row.type, row.rate, row.min_quantity, row.max_quantity, row.dripfeed)


@pytest.fixture
async def placer(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[Placer]:
    placer = Placer(pool, settings)
    await placer.start()
    yield placer
    await placer.close()


def order_request(
    terms: ServiceTerms,
    *,
    account_id: int,
    request_id: str | None = None,
    quantity: int | str = 1,
    link: str = "https://example.test/p/1",
    correlation_id: str | None = None,
) -> PlacementRequest:
    params = {"service": str(terms.id), "link": link, "quantity": str(quantity)}
    return PlacementRequest(
        account_id=account_id,
        request_id=request_id or uuid.uuid4().hex,
        params_hash=fingerprint(params),
        draft=draft_order(params, terms),
        currency="USD",
        correlation_id=correlation_id or uuid.uuid4().hex,
    )


async def account_state(pool: asyncpg.Pool, account_id: int) -> tuple[Decimal, int, int, int]:
    """(balance, orders, reserve ledger rows, mentions of its orders in order.placed events) of one account."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """
            SELECT a.balance,
                   (SELECT count(*) FROM orders o WHERE o.account_id = a.id) AS orders,
                   (SELECT count(*) FROM ledger l WHERE l.account_id = a.id AND l.kind = 'reserve') AS reserves,
                   (SELECT count(*)
                      FROM outbox x
                      CROSS JOIN jsonb_array_elements_text(x.payload->'order_ids') AS e(order_id)
                      JOIN orders n ON n.id = e.order_id::bigint
                     WHERE x.event_type = 'order.placed' AND n.account_id = a.id) AS events
            FROM accounts a WHERE a.id = $1
            """,
            account_id,
        )
    assert row is not None
    return row["balance"], row["orders"], row["reserves"], row["events"]
