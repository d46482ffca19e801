"""Orders locked `FOR UPDATE` with everything the api (refill, cancel) and the worker (answers, status
changes, operator resolutions) decide on. Inside the caller's transaction; orders are locked in id order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.db.types import Conn
from shared.domain.lifecycle import OrderView
from shared.domain.statuses import OrderState


@dataclass(frozen=True)
class LockedOrder:
    view: OrderView
    correlation_id: str | None
    submit_attempts: int
    age_s: float  # since it was bought, or placed when it was not bought yet
    cancel_requested_at: datetime | None
    service_refill: bool
    service_cancel: bool
    # Provably never reached an upstream: no attempt's send mark was ever cleared (`submit_maybe_sent`, kept by a
    # trigger) and the latest attempt's mark is in place (a claim without a mark counts as maybe sent).
    never_sent: bool


_LOCK = """
SELECT o.id, o.account_id, o.type, o.status, o.quantity, o.charge, o.refunded, o.currency, o.start_count, o.remains,
       o.correlation_id, o.submit_attempts,
       extract(epoch FROM now() - coalesce(o.submitted_at, o.created_at))::float8 AS age_s,
       o.cancel_requested_at, s.refill AS service_refill, s.cancel AS service_cancel,
       (NOT o.submit_maybe_sent AND (o.submit_attempts = 0 OR o.submit_unsent_attempt = o.submit_attempts))
           AS never_sent
FROM orders o JOIN services s ON s.id = o.service_id
WHERE {where}
ORDER BY o.id
FOR UPDATE OF o
"""
_BY_IDS = _LOCK.format(where="o.id = ANY($1::bigint[])")
_BY_ACCOUNT = _LOCK.format(where="o.id = $1 AND o.account_id = $2")


def _locked(row: asyncpg.Record) -> LockedOrder:
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
    return LockedOrder(
        view=view,
        correlation_id=row["correlation_id"],
        submit_attempts=row["submit_attempts"],
        age_s=row["age_s"],
        cancel_requested_at=row["cancel_requested_at"],
        service_refill=row["service_refill"],
        service_cancel=row["service_cancel"],
        never_sent=row["never_sent"],
    )


async def lock_orders(conn: Conn, order_ids: Sequence[int]) -> list[LockedOrder]:
    """Lock these orders (those that exist), in id order."""
    rows = await conn.fetch(_BY_IDS, sorted(set(order_ids)))
    return [_locked(r) for r in rows]


async def lock_account_order(conn: Conn, *, account_id: int, order_id: int) -> LockedOrder | None:
    """Lock one order of this account; None when the account has no such order."""
    row = await conn.fetchrow(_BY_ACCOUNT, order_id, account_id)
    return None if row is None else _locked(row)
