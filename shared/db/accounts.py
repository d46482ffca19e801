"""SQL of accounts and their ledger. Every balance change writes its ledger row in the same transaction."""

from __future__ import annotations

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
