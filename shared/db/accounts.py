"""SQL of accounts and their ledger: every balance and ledger write but the reservation of a placed order
(`shared.db.placement`, one set-based statement with the orders it places).

Every balance change writes its ledger row in the same transaction. An order's money goes back only through
`pay_refunds` (called by `shared.ordering.settlement`, for the worker and the api alike), which locks the
accounts itself. Lock order, everywhere: order rows (by id), then account rows (by id); callers that refund lock
the orders first (`shared.db.orders.locks`), so no deadlock cycle can form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from shared.db.types import Conn
from shared.domain.money import ZERO


@dataclass(frozen=True)
class LedgerMismatch:
    account_id: int
    balance: Decimal
    ledger_sum: Decimal


class AccountNotFound(LookupError):
    pass


async def create_account(
    conn: Conn,
    *,
    email: str,
    balance: Decimal = ZERO,
    tier: str = "standard",
    currency: str = "USD",
) -> int:
    async with conn.transaction():
        account_id: int = await conn.fetchval(
            "INSERT INTO accounts (email, balance, tier, currency) VALUES ($1, $2, $3, $4) RETURNING id",
            email,
            balance,
            tier,
            currency,
        )
        if balance > 0:
            await conn.execute(
                "INSERT INTO ledger (account_id, kind, amount, memo) VALUES ($1, 'topup', $2, 'opening balance')",
                account_id,
                balance,
            )
    return account_id


async def topup(conn: Conn, *, account_id: int, amount: Decimal, memo: str = "topup") -> Decimal:
    async with conn.transaction():
        balance = await conn.fetchval(
            "UPDATE accounts SET balance = balance + $2 WHERE id = $1 RETURNING balance", account_id, amount
        )
        if balance is None:
            raise AccountNotFound(account_id)
        await conn.execute(
            "INSERT INTO ledger (account_id, kind, amount, memo) VALUES ($1, 'topup', $2, $3)",
            account_id,
            amount,
            memo,
        )
    return Decimal(balance)


async def set_status(conn: Conn, *, account_id: int, status: str) -> None:
    found = await conn.fetchval("UPDATE accounts SET status = $2 WHERE id = $1 RETURNING id", account_id, status)
    if found is None:
        raise AccountNotFound(account_id)
    await conn.execute("SELECT pg_notify('panelflow_auth', $1)", f"account:{account_id}")


async def balance_of(conn: Conn, account_id: int) -> tuple[Decimal, str] | None:
    row = await conn.fetchrow("SELECT balance, currency FROM accounts WHERE id = $1", account_id)
    return None if row is None else (row["balance"], row["currency"])


async def ledger_mismatches(conn: Conn) -> list[LedgerMismatch]:
    rows = await conn.fetch(
        """
        SELECT a.id, a.balance, COALESCE(l.total, 0) AS ledger_sum
        FROM accounts a
        LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger GROUP BY account_id) l
               ON l.account_id = a.id
        WHERE a.balance <> COALESCE(l.total, 0) OR a.balance < 0
        ORDER BY a.id
        """
    )
    return [LedgerMismatch(r["id"], r["balance"], r["ledger_sum"]) for r in rows]


# --- refunds and captures of orders ----------------------------------------------------------------------


@dataclass(frozen=True)
class Refund:
    order_id: int
    account_id: int
    amount: Decimal
    memo: str


class RefundAlreadyPaid(RuntimeError):
    """The ledger already holds a refund for an order this transaction meant to refund: roll it back."""


async def pay_refunds(conn: Conn, refunds: Sequence[Refund]) -> int:
    """Lock the accounts (in id order), then write each refund's ledger row, `orders.refunded` and the balance,
    together, inside the caller's transaction; returns how many refunds were paid (amounts of 0 are skipped).

    Exactly once by schema: the ledger's unique (order_id, 'refund') index refuses a second row, and the
    `refunded <= charge` CHECK refuses an overpayment; a refund that lost such a race raises, so the caller's
    whole transaction (the status change included) rolls back and is retried against the new state.
    """
    refunds = [r for r in refunds if r.amount > 0]
    if not refunds:
        return 0
    await conn.execute(
        "SELECT id FROM accounts WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
        sorted({r.account_id for r in refunds}),
    )
    paid = await conn.fetch(
        """
        INSERT INTO ledger (account_id, kind, amount, order_id, memo)
        SELECT account_id, 'refund', amount, order_id, memo
        FROM unnest($1::bigint[], $2::bigint[], $3::numeric[], $4::text[]) AS r(order_id, account_id, amount, memo)
        ON CONFLICT DO NOTHING
        RETURNING order_id
        """,
        [r.order_id for r in refunds],
        [r.account_id for r in refunds],
        [r.amount for r in refunds],
        [r.memo for r in refunds],
    )
    if len(paid) != len(refunds):
        raise RefundAlreadyPaid(sorted({r.order_id for r in refunds} - {p["order_id"] for p in paid}))
    await conn.execute(
        """
        UPDATE orders o SET refunded = o.refunded + r.amount
        FROM unnest($1::bigint[], $2::numeric[]) AS r(order_id, amount) WHERE o.id = r.order_id
        """,
        [r.order_id for r in refunds],
        [r.amount for r in refunds],
    )
    totals: dict[int, Decimal] = {}
    for r in refunds:
        totals[r.account_id] = totals.get(r.account_id, Decimal(0)) + r.amount
    await conn.execute(
        """
        UPDATE accounts a SET balance = a.balance + t.amount
        FROM unnest($1::bigint[], $2::numeric[]) AS t(id, amount) WHERE a.id = t.id
        """,
        list(totals),
        list(totals.values()),
    )
    return len(refunds)


@dataclass(frozen=True)
class Capture:
    order_id: int
    account_id: int


async def record_captures(conn: Conn, captures: Sequence[Capture]) -> None:
    """Orders bought upstream: their reservations are now spent there. The 'capture' row moves no money (the
    balance moved at reservation); it is written once per order (unique (order_id, 'capture'))."""
    if not captures:
        return
    await conn.execute(
        """
        INSERT INTO ledger (account_id, kind, amount, order_id, memo)
        SELECT account_id, 'capture', 0, order_id, 'bought upstream'
        FROM unnest($1::bigint[], $2::bigint[]) AS c(order_id, account_id)
        ON CONFLICT DO NOTHING
        """,
        [c.order_id for c in captures],
        [c.account_id for c in captures],
    )


# --- low balance -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LowBalance:
    account_id: int
    balance: Decimal
    threshold: Decimal
    currency: str


async def arm_low_balance_alerts(conn: Conn, *, account_ids: Sequence[int], default: Decimal) -> list[LowBalance]:
    """Accounts now below their threshold that were not alerted since they last stood at or above it.

    Marks them alerted; the `accounts_rearm_low_balance` trigger (002) clears the mark when the balance is
    back at the threshold, so the next fall alerts again: one `balance.low` per crossing.
    """
    rows = await conn.fetch(
        """
        UPDATE accounts
        SET low_balance_alerted_under = coalesce(low_balance_threshold, $2)
        WHERE id = ANY($1::bigint[]) AND low_balance_alerted_under IS NULL
          AND balance < coalesce(low_balance_threshold, $2)
        RETURNING id, balance, low_balance_alerted_under AS threshold, currency
        """,
        sorted(set(account_ids)),
        default,
    )
    return [LowBalance(r["id"], r["balance"], r["threshold"], r["currency"]) for r in rows]


# --- admin reads (CLI, demo seed) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountRow:
    id: int
    email: str
    balance: Decimal
    currency: str
    tier: str
    status: str


_ACCOUNT_COLUMNS = "id, email, balance, currency, tier, status"


async def get_account(conn: Conn, account_id: int) -> AccountRow | None:
    row = await conn.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = $1", account_id)
    return None if row is None else AccountRow(**dict(row.items()))


async def find_account_by_email(conn: Conn, email: str) -> AccountRow | None:
    row = await conn.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE email = $1", email)
    return None if row is None else AccountRow(**dict(row.items()))


async def count_accounts(conn: Conn) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM accounts")
    return count


async def list_accounts(conn: Conn, *, status: str | None = None, limit: int = 1000) -> list[AccountRow]:
    rows = await conn.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE ($1::text IS NULL OR status = $1) ORDER BY id LIMIT $2",
        status,
        limit,
    )
    return [AccountRow(**dict(row.items())) for row in rows]
