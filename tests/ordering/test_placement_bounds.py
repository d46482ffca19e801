"""An order the orders table could not hold is refused before it joins a group commit: the batch it would have
ridden in is placed as one statement, never re-run one by one because of it."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import structlog

from shared.domain.bounds import INT4_MAX
from shared.domain.order_types import ServiceTerms
from shared.errors import InvalidParameter
from shared.ordering.outcomes import PlacementRequest
from shared.ordering.placement import Placer
from tests.ordering.conftest import account_state, order_request
from tests.support.factories import make_account


def hostile(request: PlacementRequest, case: str) -> PlacementRequest:
    """`request` with a value that only bypassing validation can produce (a bug, or a new code path)."""
    draft = request.draft
    cases: dict[str, dict[str, Any]] = {
        "quantity over INTEGER": {"quantity": INT4_MAX + 1},
        "NUL in link": {"link": "https://example.test/\x00"},
        "lone surrogate in a type parameter": {"params": {"quantity": 1, "comments": ["ok", "\ud800"]}},
        "charge over NUMERIC(20, 5)": {"charge": Decimal("1e16")},
    }
    changes = cases[case]
    return dataclasses.replace(request, draft=dataclasses.replace(draft, **changes))


@pytest.mark.parametrize(
    "case",
    ["quantity over INTEGER", "NUL in link", "lone surrogate in a type parameter", "charge over NUMERIC(20, 5)"],
)
async def test_an_unstorable_order_is_refused_without_splitting_the_batch(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms, case: str
) -> None:
    accounts = [await make_account(pool, balance="100") for _ in range(3)]
    good = [order_request(terms, account_id=accounts[i % 3], quantity=10) for i in range(12)]
    bad = hostile(order_request(terms, account_id=accounts[0], quantity=10), case)

    with structlog.testing.capture_logs() as logged:
        # Queued in one loop turn: without the check they would all ride in one batch with the bad one.
        results = await asyncio.gather(*(placer.place(r) for r in [*good[:6], bad, *good[6:]]), return_exceptions=True)

    refused = results[6]
    assert isinstance(refused, InvalidParameter), refused
    placed = [r for i, r in enumerate(results) if i != 6]
    assert all(isinstance(r, int) for r in placed), placed
    assert not [e for e in logged if e["event"] in ("placement_batch_failed", "placement_failed")], logged
    for account_id in accounts:
        assert await account_state(pool, account_id) == (Decimal("60"), 4, 4, 4)
