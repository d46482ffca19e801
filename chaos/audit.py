"""The Jepsen-style audit: what clients were told and what the receiver heard, against the database and the
upstream. Pure: it takes the records and returns one result per check; `broken` ones fail the run."""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chaos.evidence import IN_FLIGHT, Evidence
from chaos.load import FinalReads, History
from chaos.receiver import Delivery
from shared.domain.money import partial_refund

EXAMPLES = 5
ORDER_EVENTS = ("order.status_changed", "order.completed", "order.partial", "order.canceled")
TERMINAL_EVENT = {"completed": "order.completed", "partial": "order.partial", "canceled": "order.canceled"}


@dataclass
class Check:
    name: str
    broken: bool
    count: int
    examples: list[Any] = field(default_factory=list)
    note: str = ""

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": not self.broken, "count": self.count}
        if self.examples:
            out["examples"] = self.examples[:EXAMPLES]
        if self.note:
            out["note"] = self.note
        return out


def _check(name: str, found: list[Any], note: str = "", *, breaks: bool = True) -> Check:
    return Check(name, breaks and bool(found), len(found), found[:EXAMPLES], note)


def audit(
    history: History,
    evidence: Evidence,
    deliveries: list[Delivery],
    final: FinalReads,
    *,
    initial_balance: Decimal,
    idempotent_upstream: bool,
) -> list[Check]:
    return [
        *client_checks(history, evidence, final, initial_balance),
        *orders_checks(history, evidence),
        *upstream_checks(evidence, idempotent_upstream=idempotent_upstream),
        *money_checks(evidence),
        *webhook_checks(evidence, deliveries),
        _check("status_read_lost_order", history.status_not_found, "an acknowledged order `status` called unknown"),
        _check("http_500", history.server_errors, "a dependency outage must answer 503, never 500"),
    ]


def orders_checks(history: History, evidence: Evidence) -> list[Check]:
    by_id = {o.id: o for o in evidence.orders}
    lost = []
    for order_id, attempt in history.acknowledged().items():
        row = by_id.get(order_id)
        if row is None or (row.account_id, row.request_id) != (attempt.account_id, attempt.request_id):
            lost.append({"order": order_id, "request_id": attempt.request_id, "in_db": row is not None})
    twice = [
        {"request_id": a.request_id, "orders": sorted(a.order_ids)}
        for a in history.attempts.values()
        if len(a.order_ids) > 1
    ]
    unexpected = [
        {"order": o.id, "request_id": o.request_id}
        for o in evidence.orders
        if (o.account_id, o.request_id) not in history.attempts
    ]
    acknowledged = history.acknowledged()
    unacknowledged = [o.id for o in evidence.orders if o.id not in acknowledged]
    unsettled = [{"order": o.id, "status": o.status} for o in evidence.orders if o.status in IN_FLIGHT]
    return [
        _check("orders_lost", lost, "acknowledged {order: N} missing from the database (or another request's)"),
        _check("orders_placed_twice", twice, "one request_id answered with two order ids"),
        _check("orders_unexpected", unexpected, "orders in the database no client asked for"),
        _check(
            "orders_unacknowledged", unacknowledged, "created although the client gave up on it (allowed)", breaks=False
        ),
        _check("orders_not_settled", unsettled, "still in flight after quiescence"),
    ]


def upstream_checks(evidence: Evidence, *, idempotent_upstream: bool) -> list[Check]:
    duplicated, missing, orphaned, parked, parked_unsent = [], [], [], [], []
    reasons: Counter[str] = Counter()
    for o in evidence.orders:
        created = evidence.orders_per_link.get(o.link, 0)
        if created > 1:
            duplicated.append({"order": o.id, "upstream_orders": created})
        if o.provider_order_id is not None and created == 0:
            missing.append({"order": o.id, "provider_order_id": o.provider_order_id})
        if o.provider_order_id is None and created and o.status not in ("unknown", *IN_FLIGHT):
            orphaned.append({"order": o.id, "status": o.status})
        if o.status == "unknown":
            parked.append(
                {"order": o.id, "reason": o.last_error, "upstream_adds": evidence.adds_per_link.get(o.link, 0)}
            )
            reasons[o.last_error or ""] += 1
            if evidence.adds_per_link.get(o.link, 0) == 0:
                parked_unsent.append({"order": o.id, "reason": o.last_error})
    park_note = "parked (money reserved, shown Pending) and why: " + json.dumps(dict(reasons.most_common()))
    return [
        _check("upstream_bought_twice", duplicated, "orders the simulator created more than once for one of ours"),
        _check("upstream_order_missing", missing, "a provider order id the simulator never created"),
        _check(
            "upstream_order_orphaned",
            orphaned,
            "bought upstream but settled here without it (a loss, not a broken guarantee)",
            breaks=False,
        ),
        _check("parked", parked, park_note, breaks=idempotent_upstream),
        _check("parked_never_sent", parked_unsent, "parked although the upstream never received its `add`"),
    ]


def money_checks(evidence: Evidence) -> list[Check]:
    rows: dict[int, list[tuple[str, Decimal]]] = defaultdict(list)
    for r in evidence.ledger:
        rows[r.order_id].append((r.kind, r.amount))
    wrong = []
    for o in evidence.orders:
        kinds = Counter(kind for kind, _ in rows[o.id])
        reserve = [a for k, a in rows[o.id] if k == "reserve"]
        refund = sum((a for k, a in rows[o.id] if k == "refund"), Decimal(0))
        if o.status == "canceled":
            owed = o.charge
        elif o.status == "partial":
            owed = partial_refund(o.charge, o.remains or 0, o.quantity)
        else:
            owed = Decimal(0)
        problems = []
        if reserve != [-o.charge]:
            problems.append(f"reserve rows {[str(a) for a in reserve]} for charge {o.charge}")
        if kinds["refund"] > 1 or kinds["capture"] > 1:
            problems.append(f"ledger kinds {dict(kinds)}")
        if refund != o.refunded:
            problems.append(f"refund rows sum {refund} but order says refunded {o.refunded}")
        if o.refunded != owed:
            problems.append(f"{o.status} order refunded {o.refunded}, the contract owes {owed}")
        if problems:
            wrong.append({"order": o.id, "status": o.status, "problems": problems})
    mismatches = [
        {"account": m.account_id, "balance": str(m.balance), "ledger_sum": str(m.ledger_sum)}
        for m in evidence.mismatches
    ]
    stray = [evidence.stray_ledger] if evidence.stray_ledger else []
    return [
        _check("ledger", mismatches, "every balance equals its ledger sum and is not negative (ledger check)"),
        _check("refunds", wrong, "one reserve of the charge; at most one refund, of what the contract owes"),
        _check("ledger_stray_rows", stray, "ledger rows without an order other than top-ups"),
    ]


def webhook_checks(evidence: Evidence, deliveries: list[Delivery]) -> list[Check]:
    received: dict[str, list[Delivery]] = defaultdict(list)
    for d in deliveries:
        received[d.webhook_id].append(d)
    events = {e.id: e for e in evidence.events}
    lost = [{"event": e.id, "type": e.type, "order": e.order_id} for e in evidence.events if e.id not in received]
    unexpected = [
        {"webhook_id": wid, "account": ds[0].account_id}
        for wid, ds in received.items()
        if wid not in events or events[wid].account_id != ds[0].account_id
    ]
    redelivered = [{"webhook_id": wid, "times": len(ds)} for wid, ds in received.items() if len(ds) > 1]
    altered = [
        {"webhook_id": d.webhook_id, "received": d.data}
        for d in deliveries
        if d.webhook_id in events
        and (d.type != events[d.webhook_id].type or d.data != _without_account(events[d.webhook_id].payload))
    ]
    same: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for e in evidence.events:
        if e.type in ORDER_EVENTS:
            same[(e.type, json.dumps(e.payload, sort_keys=True))].append(e.id)
    duplicated = [{"type": key[0], "events": ids} for key, ids in same.items() if len(ids) > 1]
    kinds = {(e.order_id, e.type) for e in evidence.events}
    no_event = [
        {"order": o.id, "status": o.status}
        for o in evidence.orders
        if o.status in TERMINAL_EVENT and (o.id, TERMINAL_EVENT[o.status]) not in kinds
    ]
    unpublished = [evidence.unpublished_outbox] if evidence.unpublished_outbox else []
    return [
        _check("status_change_event_missing", no_event, "terminal orders without their terminal event"),
        _check("outbox_unpublished", unpublished, "events never handed to RabbitMQ"),
        _check("webhooks_lost", lost, "status events no delivery reached the receiver with"),
        _check("webhooks_unexpected", unexpected, "deliveries of no event of ours, or to another account"),
        _check("webhooks_altered", altered, "a delivery whose type or data differ from the event's"),
        _check("webhooks_duplicated", duplicated, "one status change emitted under two event ids"),
        _check(
            "webhooks_redelivered",
            redelivered,
            "the same webhook-id more than once (at-least-once: allowed)",
            breaks=False,
        ),
    ]


def _without_account(payload: dict[str, Any]) -> dict[str, Any]:
    """The body's `data` of an event: its payload without the routing field."""
    return {k: v for k, v in payload.items() if k != "account_id"}


RANK = {"Pending": 0, "In progress": 1, "Processing": 1, "Completed": 2, "Partial": 2, "Canceled": 2}


def client_checks(history: History, evidence: Evidence, final: FinalReads, initial: Decimal) -> list[Check]:
    """What resellers saw: statuses that never go back, and books that balance from `status` alone."""
    backwards = []
    for order_id, seen in history.observed.items():
        for before, after in itertools.pairwise(seen):
            terminal_changed = RANK.get(before[0]) == 2 and before != after
            if terminal_changed or RANK.get(after[0], -1) < RANK.get(before[0], -1):
                backwards.append({"order": order_id, "seen": [before, after]})
                break
    owned: dict[int, list[int]] = defaultdict(list)
    for o in evidence.orders:
        owned[o.account_id].append(o.id)
    books = []
    for account_id, balance in sorted(final.balances.items()):
        charges = [final.statuses.get(i, {}).get("charge") for i in owned.get(account_id, [])]
        if any(c is None for c in charges):
            books.append({"account": account_id, "problem": "an order's status had no charge"})
            continue
        spent = sum((Decimal(str(c)) for c in charges), Decimal(0))
        if initial - spent != balance:
            books.append(
                {"account": account_id, "balance": str(balance), "initial_minus_charges": str(initial - spent)}
            )
    unread = sorted(set().union(*owned.values()) - set(final.statuses)) if owned else []
    last_event: dict[int, str] = {}
    for e in evidence.events:
        if e.type == "order.status_changed" and e.order_id is not None:
            last_event[e.order_id] = str(e.payload.get("status"))
    disagree = [
        {"order": i, "status": final.statuses[i].get("status"), "last_webhook_status": status}
        for i, status in last_event.items()
        if isinstance(final.statuses.get(i), dict) and final.statuses[i].get("status") != status
    ]
    return [
        _check("status_went_back", backwards, "a polled status moved backwards, or a terminal one changed"),
        _check(
            "client_books",
            books + ([{"unread_orders": unread[:EXAMPLES]}] if unread else []),
            "each balance == initial - the sum of its orders' `status` charges (the contract's promise)",
        ),
        _check("final_status_vs_last_webhook", disagree, "`status` and the last order.status_changed disagree"),
    ]
