"""The placement statement's duplicate look-up probes the (account_id, request_id) unique index whatever the
statistics of `orders` say.

asyncpg prepares the statement once per connection and Postgres settles on a generic plan after a few runs,
kept until `orders` is analyzed again: a plan made from the statistics of a nearly empty table (a fresh
database before autovacuum's ANALYZE) must not read the whole table per batch once it has grown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.db import placement as sql
from shared.db.migrate import migrate
from shared.db.pool import connect, drop_database, ensure_database, with_database
from shared.settings import Settings
from tests.conftest import RUN_ID

UNIQUE_INDEX = "orders_account_id_request_id_key"

# One order's column values as text array literals, in the statement's parameter order ($1..$12).
ONE_ORDER = ["{1}", "{r}", '{"\\\\x00"}', "{1}", "{Default}", "{NULL}", "{1}", '{"{}"}', "{1}", "{1}", "{USD}", "{c}"]


@pytest.fixture
async def fresh(base_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A database of its own, migrated, with autovacuum off for `orders` so that only the test analyzes it."""
    url = with_database(base_settings.database_url, f"panelflow_test_{RUN_ID}_plan")
    await ensure_database(url)
    conn = await connect(base_settings.model_copy(update={"database_url": url}))
    try:
        await migrate(conn)
        await conn.execute("ALTER TABLE orders SET (autovacuum_enabled = false)")
        # 200 accounts, the orders spread over them as a reseller panel's are.
        await conn.execute(
            "INSERT INTO accounts (email, balance)"
            " SELECT 'plan' || g || '@example.test', 1 FROM generate_series(1, 200) g"
        )
        account_id = await conn.fetchval("SELECT min(id) FROM accounts")
        service_id = await conn.fetchval(
            "INSERT INTO services (name, type, rate, max_quantity) VALUES ('s', 'Default', 1, 10) RETURNING id"
        )
        await conn.execute("CREATE TEMP TABLE ids (account_id bigint, service_id bigint)")
        await conn.execute("INSERT INTO ids VALUES ($1, $2)", account_id, service_id)
        yield conn
    finally:
        await conn.close()
        await drop_database(url)


async def _add_orders(conn: asyncpg.Connection, first: int, count: int) -> None:
    await conn.execute(
        """
        INSERT INTO orders (account_id, request_id, params_hash, service_id, type, quantity, params, rate,
                            charge, currency)
        SELECT ids.account_id + g % 200, 'req-' || g, '\\x00', ids.service_id, 'Default', 1, '{}', 1, 1, 'USD'
        FROM ids, generate_series($1::int, $2::int) g
        """,
        first,
        first + count - 1,
    )


async def _generic_plan(conn: asyncpg.Connection) -> str:
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await conn.execute(f"PREPARE place AS {sql.PLACE_BATCH}")
    try:
        args = ", ".join(f"'{a}'" for a in ONE_ORDER)
        rows = await conn.fetch(f"EXPLAIN EXECUTE place({args})")
    finally:
        await conn.execute("DEALLOCATE place")
        await conn.execute("RESET plan_cache_mode")
    return "\n".join(r[0] for r in rows)


@pytest.mark.parametrize(
    ("analyzed_at", "added_after"),
    [
        (1, 3_000),  # analyzed nearly empty, then grown: the old look-up hashed a sequential scan of orders
        (30, 3_000),  # every account looked unique: the old look-up walked all orders of the account
        (400, 0),  # the plan made while the table is small, as a cached generic plan is
    ],
)
async def test_the_duplicate_look_up_probes_the_unique_index(
    fresh: asyncpg.Connection, analyzed_at: int, added_after: int
) -> None:
    await _add_orders(fresh, 1, analyzed_at)
    await fresh.execute("ANALYZE orders")
    await _add_orders(fresh, analyzed_at + 1, added_after)

    plan = await _generic_plan(fresh)

    assert "Seq Scan on orders" not in plan, plan
    existing = plan[plan.index("CTE existing") : plan.index("CTE locked")]
    assert f"Index Scan using {UNIQUE_INDEX} on orders" in existing, existing
    assert "orders_account_idx" not in existing, existing
