"""Money and events of order changes, gathered inside one transaction and written together at its end.

A change of an order's state goes with its refund (ledger, `orders.refunded`, balance) and its outbox events
in the same transaction, so a reseller never sees a Partial without its refund, nor a refund without an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from shared.db import lifecycle as sql
from shared.db import outbox
from shared.db.types import Conn
from shared.domain.events import BalanceLow, Event, event
from shared.domain.lifecycle import OrderView, events_for, status_event
from shared.domain.money import ZERO
from shared.domain.statuses import OrderState
from shared.observability import metrics


@dataclass
class Settlement:
    refunds: list[sql.Refund] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def order_moved(
        self,
        order: OrderView,
        *,
        state: OrderState,
        start_count: int | None,
        remains: int | None,
        refund: Decimal = ZERO,
        memo: str = "",
        correlation_id: str | None = None,
    ) -> None:
        """Record a state change of `order` (already written by the caller) with the refund it owes."""
        if refund > 0:
            self.refunds.append(sql.Refund(order.id, order.account_id, refund, memo or f"refund: {state}"))
        kinds = events_for(order.state, state)
        if not kinds:
            return
        body = status_event(
            order, state=state, refunded=order.refunded + refund, start_count=start_count, remains=remains
        )
        self.events.extend(event(kind, body, correlation_id) for kind in kinds)

    def low_balance(self, alerts: list[sql.LowBalance]) -> None:
        for alert in alerts:
            body = BalanceLow(alert.account_id, alert.balance, alert.threshold, alert.currency)
            self.events.append(event(BalanceLow.TYPE, body))

    async def write(self, conn: Conn) -> None:
        """Pay the refunds (accounts locked in id order) and add the events; inside the caller's transaction."""
        if self.refunds:
            await sql.lock_accounts(conn, [r.account_id for r in self.refunds])
            await sql.pay_refunds(conn, self.refunds)
            metrics.REFUNDS.inc(len(self.refunds))
        await outbox.add_events(conn, self.events)
