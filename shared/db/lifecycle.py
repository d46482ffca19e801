"""SQL of the order lifecycle after placement: submission claims and results, status-poll claims, progress
updates and refunds. Every function runs inside the caller's transaction unless it says otherwise.

Lock order, everywhere: order rows (by id), then account rows (by id). The api's placement locks accounts
only, its cancel an order then its account; keeping to this order leaves no room for a deadlock cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from shared.db.types import Conn
from shared.domain.lifecycle import OrderView
from shared.domain.statuses import OrderState

# --- submission ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """A claimed order ('submitting' is committed) with everything the upstream `add` needs."""

    id: int
    account_id: int
    type: str
    link: str | None
    quantity: int
    params: dict[str, Any]
    attempt: int
    correlation_id: str | None
    provider_id: int | None
    provider_service_id: str | None
    created_us: int
    idempotent: bool  # the provider honours request_id: an unknown outcome is resolved by sending it again


_CLAIM_SUBMISSION = """
WITH picked AS ({picked}),
claimed AS (
    UPDATE orders o
    SET status = 'submitting', submit_attempts = o.submit_attempts + 1, submit_started_at = now(),
        submit_unsent_attempt = o.submit_attempts + 1, updated_at = now()
    FROM picked WHERE o.id = picked.id
    RETURNING o.id, o.account_id, o.type, o.link, o.quantity, o.params, o.submit_attempts, o.correlation_id,
              o.service_id, o.created_at
)
SELECT c.id, c.account_id, c.type, c.link, c.quantity, c.params, c.submit_attempts AS attempt, c.correlation_id,
       s.provider_id, s.provider_service_id, (extract(epoch FROM c.created_at) * 1000000)::bigint AS created_us,
       coalesce(p.idempotent, false) AS idempotent
FROM claimed c JOIN services s ON s.id = c.service_id LEFT JOIN providers p ON p.id = s.provider_id
ORDER BY c.id
"""

# Orders named by `order.placed` messages: wait for a lock held by someone else (the api cancelling it,
# another worker claiming it), then see whether it is still pending.
_PICK_NAMED = "SELECT id FROM orders WHERE id = ANY($1::bigint[]) AND status = 'pending' ORDER BY id FOR UPDATE"
# Pending orders due for a retry, and orders whose message never came (older than the grace period).
_PICK_DUE = """
SELECT id FROM orders
WHERE status = 'pending'
  AND (next_attempt_at <= now() OR (next_attempt_at IS NULL AND created_at < now() - make_interval(secs => $1)))
ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
"""


def _submission(row: asyncpg.Record) -> Submission:
    return Submission(**dict(row.items()))


async def claim_named(conn: Conn, order_ids: Sequence[int]) -> list[Submission]:
    """Mark the still-pending orders among `order_ids` 'submitting'; the caller commits before calling out."""
    rows = await conn.fetch(_CLAIM_SUBMISSION.format(picked=_PICK_NAMED), sorted(set(order_ids)))
    return [_submission(r) for r in rows]


async def claim_due(conn: Conn, *, grace_s: float, limit: int) -> list[Submission]:
    rows = await conn.fetch(_CLAIM_SUBMISSION.format(picked=_PICK_DUE), grace_s, limit)
    return [_submission(r) for r in rows]


_ORDER_VIEW_COLUMNS = """
o.id, o.account_id, o.type, o.status, o.quantity, o.charge, o.refunded, o.currency, o.start_count, o.remains,
o.correlation_id
"""


@dataclass(frozen=True)
class LockedOrder:
    view: OrderView
    correlation_id: str | None
    extra: dict[str, Any]


def _locked(row: asyncpg.Record, extra: Sequence[str] = ()) -> LockedOrder:
    view = OrderView(
        id=row["id"],
        account_id=row["account_id"],
        type=row["type"],
        state=OrderState(row["status"]),
        quantity=row["quantity"],
        charge=row["charge"],
        refunded=row["refunded"],
        currency=row["currency"],
        start_count=row["start_count"],
        remains=row["remains"],
    )
    return LockedOrder(view, row["correlation_id"], {name: row[name] for name in extra})


async def lock_orders(conn: Conn, order_ids: Sequence[int]) -> list[LockedOrder]:
    """Lock orders by id (in id order) with their lifecycle view and age in seconds (`extra['age_s']`)."""
    rows = await conn.fetch(
        f"""
        SELECT {_ORDER_VIEW_COLUMNS}, o.submit_attempts,
               extract(epoch FROM now() - coalesce(o.submitted_at, o.created_at))::float8 AS age_s
        FROM orders o WHERE o.id = ANY($1::bigint[]) ORDER BY o.id FOR UPDATE
        """,
        sorted(set(order_ids)),
    )
    return [_locked(r, ("submit_attempts", "age_s")) for r in rows]


async def lock_accounts(conn: Conn, account_ids: Sequence[int]) -> None:
    if account_ids:
        await conn.execute(
            "SELECT id FROM accounts WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", sorted(set(account_ids))
        )


@dataclass(frozen=True)
class Purchase:
    order_id: int
    provider_id: int
    provider_order_id: str
    first_poll_s: float


async def mark_accepted(conn: Conn, purchases: Sequence[Purchase]) -> None:
    """Orders the upstream took: their ids there, the reservations captured, the first status checks scheduled.

    The capture row moves no money (the balance moved at reservation); it records that the reserved charge
    is now spent upstream, once (unique (order_id, 'capture')). Set-based: one statement per batch.
    """
    if not purchases:
        return
    await conn.execute(
        """
        WITH p AS (
            SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::float8[])
                AS p(id, provider_id, provider_order_id, first_s)
        ),
        bought AS (
            UPDATE orders o
            SET status = 'in_progress', provider_id = p.provider_id, provider_order_id = p.provider_order_id,
                submitted_at = now(), next_attempt_at = now() + make_interval(secs => p.first_s),
                submit_started_at = NULL, last_error = NULL, updated_at = now()
            FROM p WHERE o.id = p.id
            RETURNING o.id, o.account_id
        )
        INSERT INTO ledger (account_id, kind, amount, order_id, memo)
        SELECT account_id, 'capture', 0, id, 'bought upstream' FROM bought
        ON CONFLICT DO NOTHING
        """,
        [p.order_id for p in purchases],
        [p.provider_id for p in purchases],
        [p.provider_order_id for p in purchases],
        [p.first_poll_s for p in purchases],
    )


async def mark_retry(conn: Conn, *, order_id: int, delay_s: float, error: str) -> None:
    await conn.execute(
        """
        UPDATE orders SET status = 'pending', next_attempt_at = now() + make_interval(secs => $2),
                          submit_started_at = NULL, last_error = $3, updated_at = now()
        WHERE id = $1
        """,
        order_id,
        delay_s,
        error,
    )


async def mark_parked(conn: Conn, *, order_id: int, error: str) -> None:
    await conn.execute(
        """
        UPDATE orders SET status = 'unknown', next_attempt_at = NULL, last_error = $2, updated_at = now()
        WHERE id = $1
        """,
        order_id,
        error,
    )


# --- status polling --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollClaim:
    id: int
    provider_id: int
    provider_order_id: str


async def claim_due_polls(conn: Conn, *, limit: int, lease_s: float) -> list[PollClaim]:
    """Claim in-flight orders due for a status check (autocommit is fine: one statement).

    The claim pushes `next_attempt_at` a lease ahead, so the rows are free again for other workers at once and
    come back by themselves if this worker dies before it records the answer.
    """
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT id FROM orders
            WHERE status IN ('in_progress', 'processing') AND next_attempt_at <= now()
            ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
        )
        UPDATE orders o SET next_attempt_at = now() + make_interval(secs => $2), polls = o.polls + 1
        FROM due WHERE o.id = due.id AND o.provider_id IS NOT NULL AND o.provider_order_id IS NOT NULL
        RETURNING o.id, o.provider_id, o.provider_order_id
        """,
        limit,
        lease_s,
    )
    return [PollClaim(r["id"], r["provider_id"], r["provider_order_id"]) for r in rows]


@dataclass(frozen=True)
class Progress:
    order_id: int
    state: OrderState
    start_count: int | None
    remains: int | None
    next_poll_s: float | None  # None: terminal, never polled again
    error: str | None = None


async def record_progress(conn: Conn, progress: Sequence[Progress]) -> None:
    """Status, counters and the next check of polled orders, in one statement. Only in-flight rows move."""
    if not progress:
        return
    await conn.execute(
        """
        UPDATE orders o
        SET status = p.state, start_count = p.start_count, remains = p.remains,
            next_attempt_at = CASE WHEN p.next_s IS NULL THEN NULL
                                   ELSE now() + make_interval(secs => p.next_s) END,
            last_error = p.error, updated_at = now()
        FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::float8[], $6::text[])
             AS p(id, state, start_count, remains, next_s, error)
        WHERE o.id = p.id AND o.status IN ('in_progress', 'processing')
        """,
        [p.order_id for p in progress],
        [str(p.state) for p in progress],
        [p.start_count for p in progress],
        [p.remains for p in progress],
        [p.next_poll_s for p in progress],
        [p.error for p in progress],
    )


# --- refunds ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refund:
    order_id: int
    account_id: int
    amount: Decimal
    memo: str


class RefundAlreadyPaid(RuntimeError):
    """The ledger already holds a refund for an order this transaction meant to refund: roll it back."""


async def pay_refunds(conn: Conn, refunds: Sequence[Refund]) -> None:
    """Ledger row, `orders.refunded` and the balance for each refund, together.

    Exactly once by schema: the ledger's unique (order_id, 'refund') index refuses a second row, and the
    `refunded <= charge` CHECK refuses an overpayment; a refund that lost such a race raises, so the caller's
    whole transaction (the status change included) rolls back and is retried against the new state.
    Lock the accounts (`lock_accounts`) first.
    """
    refunds = [r for r in refunds if r.amount > 0]
    if not refunds:
        return
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


async def finish_canceled(conn: Conn, *, order_id: int, error: str | None) -> None:
    """A refused order: 'canceled', nothing delivered (the refund is paid separately with `pay_refunds`)."""
    await conn.execute(
        """
        UPDATE orders SET status = 'canceled', remains = quantity, next_attempt_at = NULL,
                          submit_started_at = NULL, last_error = $2, updated_at = now()
        WHERE id = $1
        """,
        order_id,
        error,
    )


# --- cancel forwarding -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CancelClaim:
    order_id: int
    provider_id: int
    provider_order_id: str
    allowed: bool


async def claim_cancels(conn: Conn, *, order_ids: Sequence[int] | None, limit: int) -> list[CancelClaim]:
    """In-flight orders with a cancel request not yet forwarded; marks them forwarded (commit before calling).

    `order_ids=None`: any such order (the sweeper); otherwise only those named by `cancel.requested`.
    """
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT o.id FROM orders o
            WHERE o.cancel_requested_at IS NOT NULL AND o.cancel_forwarded_at IS NULL
              AND o.status IN ('in_progress', 'processing')
              AND ($1::bigint[] IS NULL OR o.id = ANY($1::bigint[]))
            ORDER BY o.id LIMIT $2 FOR UPDATE SKIP LOCKED
        )
        UPDATE orders o SET cancel_forwarded_at = now(), next_attempt_at = now(), updated_at = now()
        FROM due, services s
        WHERE o.id = due.id AND s.id = o.service_id
        RETURNING o.id, o.provider_id, o.provider_order_id, s.cancel AS allowed
        """,
        None if order_ids is None else list(order_ids),
        limit,
    )
    return [CancelClaim(r["id"], r["provider_id"], r["provider_order_id"], r["allowed"]) for r in rows]


async def request_cancel(conn: Conn, *, order_id: int) -> None:
    """Record a cancel request (idempotent: the first request's time stays)."""
    await conn.execute(
        "UPDATE orders SET cancel_requested_at = coalesce(cancel_requested_at, now()) WHERE id = $1", order_id
    )


async def note_error(conn: Conn, *, order_id: int, error: str) -> None:
    await conn.execute("UPDATE orders SET last_error = $2, updated_at = now() WHERE id = $1", order_id, error)


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


# --- providers -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderEndpoint:
    id: int
    name: str
    url: str
    api_key_enc: str | None = field(repr=False)  # decrypted by shared.catalog.providers.provider_key
    legacy_api_key: str | None = field(repr=False)  # plaintext from before migration 006, until encrypted
    active: bool


async def provider_endpoints(conn: Conn) -> dict[int, ProviderEndpoint]:
    rows = await conn.fetch("SELECT id, name, url, api_key_enc, api_key AS legacy_api_key, active FROM providers")
    return {r["id"]: ProviderEndpoint(**dict(r.items())) for r in rows}
