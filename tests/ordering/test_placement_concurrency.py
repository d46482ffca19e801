"""Placement under concurrency: retries all at once, overdraw attempts, racing batches, group commit."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest

from shared.db import accounts
from shared.db.accounts import ledger_mismatches
from shared.domain.order_types import ServiceTerms
from shared.errors import InsufficientBalance, RequestIdConflict
from shared.ordering.placement import Placer
from tests.ordering.conftest import account_state, order_request
from tests.support.factories import make_account


async def test_twenty_concurrent_retries_of_each_of_100_request_ids(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms
) -> None:
    account_id = await make_account(pool, balance="1000")
    requests = [order_request(terms, account_id=account_id, request_id=f"retry-{n}", quantity=2) for n in range(100)]
    calls = [req for req in requests for _ in range(20)]

    ids = await asyncio.gather(*(placer.place(req) for req in calls))

    by_request: dict[str, set[int]] = {}
    for req, order_id in zip(calls, ids, strict=True):
        by_request.setdefault(req.request_id, set()).add(order_id)
    assert all(len(got) == 1 for got in by_request.values())
    assert len({next(iter(got)) for got in by_request.values()}) == 100
    assert await account_state(pool, account_id) == (Decimal("800"), 100, 100, 100)
    async with pool.acquire() as conn:
        assert await ledger_mismatches(conn) == []


async def test_1000_concurrent_orders_against_a_balance_for_100(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms
) -> None:
    account_id = await make_account(pool, balance="100")
    requests = [order_request(terms, account_id=account_id, quantity=1) for _ in range(1000)]

    results = await asyncio.gather(*(placer.place(req) for req in requests), return_exceptions=True)

    accepted = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if not isinstance(r, int)]
    assert len(accepted) == len(set(accepted)) == 100
    assert len(refused) == 900
    assert all(isinstance(r, InsufficientBalance) for r in refused)
    assert await account_state(pool, account_id) == (Decimal("0"), 100, 100, 100)
    async with pool.acquire() as conn:
        assert await ledger_mismatches(conn) == []


async def test_many_accounts_drawn_to_zero_at_once(pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms) -> None:
    account_ids = [await make_account(pool, balance="10") for _ in range(10)]
    requests = [order_request(terms, account_id=a, quantity=q) for q in (3, 4, 5, 1, 2, 6) for a in account_ids]

    results = await asyncio.gather(*(placer.place(req) for req in requests), return_exceptions=True)

    assert all(isinstance(r, int | InsufficientBalance) for r in results)
    async with pool.acquire() as conn:
        assert await ledger_mismatches(conn) == []
        for account_id in account_ids:
            placed = await conn.fetchval("SELECT sum(charge) FROM orders WHERE account_id = $1", account_id)
            balance = await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", account_id)
            assert placed + balance == Decimal("10")
            # Whatever was refused must really not have fitted into what the account had left.
            refused = [
                req.draft.charge
                for req, r in zip(requests, results, strict=True)
                if req.account_id == account_id and isinstance(r, InsufficientBalance)
            ]
            assert all(charge > balance for charge in refused)


async def test_greedy_refusals_are_rerun_alone(pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms) -> None:
    account_id = await make_account(pool, balance="10")
    eight, five, one = (order_request(terms, account_id=account_id, quantity=q) for q in (8, 5, 1))

    # Queued in the same loop turn, so the batcher takes the three as one batch: 8 fits, the running sum then
    # refuses 5 and 1; 1 still fits alone into the 2 left.
    results = await asyncio.gather(placer.place(eight), placer.place(five), placer.place(one), return_exceptions=True)

    assert isinstance(results[0], int)
    assert isinstance(results[1], InsufficientBalance)
    assert isinstance(results[2], int)
    assert await account_state(pool, account_id) == (Decimal("1"), 2, 2, 2)


async def test_duplicates_in_one_batch_with_other_params(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms
) -> None:
    account_id = await make_account(pool, balance="100")
    first = order_request(terms, account_id=account_id, request_id="dup", quantity=1)
    other = order_request(terms, account_id=account_id, request_id="dup", quantity=2)

    results = await asyncio.gather(
        placer.place(first), placer.place(other), placer.place(first), return_exceptions=True
    )

    assert isinstance(results[0], int)
    assert isinstance(results[1], RequestIdConflict)
    assert results[2] == results[0]
    assert await account_state(pool, account_id) == (Decimal("99"), 1, 1, 1)


async def test_duplicate_of_a_refused_order_with_other_params_gets_its_own_chance(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms
) -> None:
    account_id = await make_account(pool, balance="5")
    too_big = order_request(terms, account_id=account_id, request_id="second-chance", quantity=6)
    fits = order_request(terms, account_id=account_id, request_id="second-chance", quantity=5)

    results = await asyncio.gather(placer.place(too_big), placer.place(fits), return_exceptions=True)

    assert isinstance(results[0], InsufficientBalance)
    assert isinstance(results[1], int)
    assert await account_state(pool, account_id) == (Decimal("0"), 1, 1, 1)


async def _wait_until_blocked_on_a_lock(pool: asyncpg.Pool, blocker_pid: int) -> None:
    async with pool.acquire() as conn:
        for _ in range(200):
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))", blocker_pid
            )
            if waiting:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the placement never waited for the account lock")


@pytest.mark.parametrize("same_params", [True, False])
async def test_request_id_committed_by_a_racing_transaction(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms, same_params: bool
) -> None:
    """A batch whose snapshot predates the winner's commit: ON CONFLICT skips, the winner is read back."""
    account_id = await make_account(pool, balance="100")
    winner = order_request(terms, account_id=account_id, request_id="race", quantity=1)
    racer = winner if same_params else order_request(terms, account_id=account_id, request_id="race", quantity=2)

    async with pool.acquire() as blocker:
        transaction = blocker.transaction()
        await transaction.start()
        try:
            # The racing transaction holds the account lock and has inserted the order, not yet committed.
            await blocker.execute("SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE", account_id)
            winner_id = await blocker.fetchval(
                """
                INSERT INTO orders (account_id, request_id, params_hash, service_id, type, link, quantity, params,
                                    rate, charge, currency)
                VALUES ($1, 'race', $2, $3, 'Default', 'https://example.test/p/1', 1, '{}', $4, 0, 'USD')
                RETURNING id
                """,
                account_id,
                winner.params_hash,
                terms.id,
                terms.rate,
            )
            task = asyncio.create_task(placer.place(racer))
            await _wait_until_blocked_on_a_lock(pool, blocker.get_server_pid())
        except BaseException:
            await transaction.rollback()
            raise
        await transaction.commit()

    if same_params:
        assert await task == winner_id
    else:
        with pytest.raises(RequestIdConflict):
            await task
    assert await account_state(pool, account_id) == (Decimal("100"), 1, 0, 0)


async def test_concurrent_calls_share_transactions(pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms) -> None:
    """Group commit: 200 concurrent orders over 20 accounts take far fewer than 200 transactions."""
    account_ids = [await make_account(pool, balance="100") for _ in range(20)]
    requests = [order_request(terms, account_id=account_ids[n % 20], quantity=1) for n in range(200)]

    ids = await asyncio.gather(*(placer.place(req) for req in requests))

    async with pool.acquire() as conn:
        transactions = await conn.fetchval(
            "SELECT count(DISTINCT xmin::text) FROM orders WHERE id = ANY ($1::bigint[])", ids
        )
        assert await ledger_mismatches(conn) == []
    assert len(set(ids)) == 200
    assert transactions <= 200 // 8


async def test_placements_interleaved_with_other_balance_writers(
    pool: asyncpg.Pool, placer: Placer, terms: ServiceTerms
) -> None:
    """Top-ups committed while batches wait for the account lock are seen: the balance always adds up."""
    account_id = await make_account(pool, balance="20")

    async def topups() -> None:
        for _ in range(30):
            async with pool.acquire() as conn:
                await accounts.topup(conn, account_id=account_id, amount=Decimal("3"))
            await asyncio.sleep(0)

    async def orders() -> list[int | BaseException]:
        results: list[int | BaseException] = []
        for _ in range(10):
            wave = [order_request(terms, account_id=account_id, quantity=2) for _ in range(10)]
            results += await asyncio.gather(*(placer.place(r) for r in wave), return_exceptions=True)
        return results

    _, results = await asyncio.gather(topups(), orders())

    placed = sum(1 for r in results if isinstance(r, int))
    assert all(isinstance(r, int | InsufficientBalance) for r in results)
    assert placed >= 10  # the opening balance alone pays for 10
    balance, orders_count, reserves, events = await account_state(pool, account_id)
    assert (orders_count, reserves, events) == (placed, placed, placed)
    assert balance == Decimal("20") + 30 * Decimal("3") - 2 * placed
    async with pool.acquire() as conn:
        assert await ledger_mismatches(conn) == []
