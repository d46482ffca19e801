"""The exact bytes of a 100-id `status` answer: every state, money with 2 to 5 places, a fully refunded charge,
reported and unreported counters, two currencies and per-id errors, in the order the ids were asked, the same for
a strict and a classic key."""

from __future__ import annotations

import uuid

import asyncpg

from tests.api.conftest import ApiClient
from tests.support.factories import make_account, make_key, make_service

# Stored: status, charge, refunded, quantity, start_count, remains, currency; shown: charge, start_count, status,
# remains.
CASES = [
    ("pending", "0.09", "0", 100, None, None, "USD", "0.09", "0", "Pending", "100"),
    ("submitting", "1.5", "0", 200, None, None, "USD", "1.50", "0", "Pending", "200"),
    ("unknown", "12.34567", "0", 300, None, None, "USD", "12.34567", "0", "Pending", "300"),
    ("in_progress", "100", "0", 1000, 3572, 800, "USD", "100.00", "3572", "In progress", "800"),
    ("processing", "0.00001", "0", 10, 0, None, "USD", "0.00001", "0", "Processing", "10"),
    ("completed", "2", "0", 500, 10, None, "USD", "2.00", "10", "Completed", "0"),
    ("completed", "2", "0", 500, 10, 5, "EUR", "2.00", "10", "Completed", "5"),
    ("partial", "0.9", "0.225", 1000, 3572, 250, "USD", "0.675", "3572", "Partial", "250"),
    ("canceled", "2", "2", 1000, None, None, "USD", "0", "0", "Canceled", "1000"),
    ("partial", "123456789012345.12345", "0.00005", 7, 1, 1, "USD", "123456789012345.1234", "1", "Partial", "1"),
    ("completed", "10.1", "0.1", 50, 0, 0, "EUR", "10.00", "0", "Completed", "0"),
]  # fmt: skip
ERROR = '{"error":"Incorrect order ID"}'


async def _insert(pool: asyncpg.Pool, account_id: int, service_id: int, case: tuple[object, ...]) -> int:
    status, charge, refunded, quantity, start_count, remains, currency = case[:7]
    async with pool.acquire() as conn:
        order_id: int = await conn.fetchval(
            "INSERT INTO orders (account_id, request_id, params_hash, service_id, type, quantity, params, rate,"
            " charge, refunded, currency, status, start_count, remains)"
            " VALUES ($1, $2, '\\x00', $3, 'Default', $4, '{}', 1, $5::numeric, $6::numeric, $7, $8, $9, $10)"
            " RETURNING id",
            account_id, uuid.uuid4().hex, service_id, quantity, charge, refunded, currency, status, start_count,
            remains,
        )  # fmt: skip
    return order_id


async def test_a_100_id_answer_is_pinned_to_the_byte(client: ApiClient, pool: asyncpg.Pool) -> None:
    service = await make_service(pool)
    account, other = await make_account(pool), await make_account(pool)
    theirs = await _insert(pool, other, service, CASES[0])
    tokens: list[str] = []
    entries: list[str] = []
    for i in range(90):
        case = CASES[i % len(CASES)]
        order_id = await _insert(pool, account, service, case)
        tokens.append(str(order_id))
        charge, start_count, status, remains = case[7:]
        entries.append(
            f'"{order_id}":{{"charge":"{charge}","start_count":"{start_count}","status":"{status}",'
            f'"remains":"{remains}","currency":"{case[6]}"}}'
        )
    for bad in [str(theirs), "abc", "999999999999", "0", "12x", "1e3", "9" * 30, "-5", "0x1F", "x"]:
        tokens.append(bad)  # another account's order reads like a missing one
        entries.append(f'"{bad}":{ERROR}')
    assert len(tokens) == 100
    expected = ("{" + ",".join(entries) + "}").encode()
    for profile in ("strict", "classic"):
        key = await make_key(pool, account_id=account, profile=profile)
        form = {"action": "status", "key": key, "orders": ",".join(tokens)}
        async with client.session.post(client.base_url + "/api/v2", data=form) as resp:
            assert (resp.status, resp.content_type) == (200, "application/json")
            assert await resp.read() == expected, profile
