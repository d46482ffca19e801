"""Money and events of order changes, gathered inside one transaction and written together at its end: the one
path by which an order's money moves after placement, for the worker (answers, status changes, operator
resolutions) and the api (cancel of a pending order) alike.

A change of an order's state goes with its refund (ledger, `orders.refunded`, balance) and its outbox events
in the same transaction, so a reseller never sees a Partial without its refund, nor a refund without an event.
The amount is the domain's rule (`shared.domain.lifecycle.refund_owed`), the write `shared.db.accounts`'s
(`pay_refunds`: accounts locked in id order, after the caller locked the orders; exactly once by schema,
`RefundAlreadyPaid` when another transaction refunded the order first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.db import accounts, outbox
from shared.db.types import Conn
from shared.domain.events import BalanceLow, Event, event
from shared.domain.lifecycle import OrderView, events_for, refund_owed, status_event
from shared.domain.statuses import OrderState


@dataclass
class Settlement:
    refunds: list[accounts.Refund] = field(default_factory=list)
    captures: list[accounts.Capture] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def order_moved(
        self,
        order: OrderView,
        *,
        state: OrderState,
        start_count: int | None,
        remains: int | None,
        memo: str = "",
        correlation_id: str | None = None,
    ) -> None:
        """Record a state change of `order` (already written by the caller) with the refund the move owes."""
        refund = refund_owed(order, state, remains)
        if refund > 0:
            self.refunds.append(accounts.Refund(order.id, order.account_id, refund, memo or f"refund: {state}"))
        kinds = events_for(order.state, state)
        if not kinds:
            return
        body = status_event(
            order, state=state, refunded=order.refunded + refund, start_count=start_count, remains=remains
        )
        self.events.extend(event(kind, body, correlation_id) for kind in kinds)

    def bought(self, captures: list[accounts.Capture]) -> None:
        """Orders bought upstream (`shared.db.orders.submission.mark_accepted`): their reservations are spent."""
        self.captures.extend(captures)

    def low_balance(self, alerts: list[accounts.LowBalance]) -> None:
        for alert in alerts:
            body = BalanceLow(alert.account_id, alert.balance, alert.threshold, alert.currency)
            self.events.append(event(BalanceLow.TYPE, body))

    async def write(self, conn: Conn) -> int:
        """Pay the refunds, record the captures and add the events, inside the caller's transaction (the orders
        locked); returns how many refunds were paid."""
        paid = await accounts.pay_refunds(conn, self.refunds)
        await accounts.record_captures(conn, self.captures)
        await outbox.add_events(conn, self.events)
        return paid
