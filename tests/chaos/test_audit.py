"""The audit finds each broken guarantee it looks for, and passes a consistent history."""

from __future__ import annotations

from decimal import Decimal

from chaos.audit import Check, audit
from chaos.evidence import DbOrder, Evidence, LedgerRow, StatusEvent
from chaos.load import Attempt, History
from chaos.receiver import Delivery
from shared.db.accounts import LedgerMismatch

CHARGE = Decimal("0.9")


def _world() -> tuple[History, Evidence, list[Delivery]]:
    """One account, two orders: #1 completed, #2 partial (remains 250 of 1000); every event delivered once."""
    history = History()
    for n, order_id in ((1, 1), (2, 2)):
        attempt = Attempt(7, f"r-{n}", f"https://x.test/{n}", 1000, sends=1, order_ids={order_id})
        history.attempts[(7, attempt.request_id)] = attempt
    refund = Decimal("0.225")
    orders = [
        DbOrder(1, 7, "r-1", "https://x.test/1", "completed", 1000, CHARGE, Decimal(0), 0, "11", None),
        DbOrder(2, 7, "r-2", "https://x.test/2", "partial", 1000, CHARGE, refund, 250, "12", None),
    ]
    ledger = [
        LedgerRow(1, "reserve", -CHARGE),
        LedgerRow(1, "capture", Decimal(0)),
        LedgerRow(2, "reserve", -CHARGE),
        LedgerRow(2, "capture", Decimal(0)),
        LedgerRow(2, "refund", refund),
    ]
    events = []
    for order_id, status, kind in ((1, "Completed", "order.completed"), (2, "Partial", "order.partial")):
        for i, etype in enumerate(("order.status_changed", kind)):
            payload = {"account_id": 7, "order": order_id, "status": status, "type": etype}
            events.append(StatusEvent(f"e{order_id}{i}", etype, 7, order_id, payload, True))
    evidence = Evidence(
        orders=orders, ledger=ledger, stray_ledger=0, mismatches=[], events=events, unpublished_outbox=0,
        deliveries={"succeeded": 4}, adds_per_link={o.link: 1 for o in orders},
        orders_per_link={o.link: 1 for o in orders},
    )  # fmt: skip
    deliveries = [Delivery(e.id, 7, e.type, {k: v for k, v in e.payload.items() if k != "account_id"}) for e in events]
    return history, evidence, deliveries


def _broken(checks: list[Check]) -> set[str]:
    return {c.name for c in checks if c.broken}


def test_a_consistent_history_breaks_nothing() -> None:
    assert _broken(audit(*_world(), idempotent_upstream=True)) == set()


def test_an_acknowledged_order_missing_from_the_database_is_lost() -> None:
    history, evidence, deliveries = _world()
    history.attempts[(7, "r-3")] = Attempt(7, "r-3", "https://x.test/3", 100, sends=2, order_ids={3})

    assert _broken(audit(history, evidence, deliveries, idempotent_upstream=True)) == {"orders_lost"}


def test_one_request_id_answered_with_two_orders_is_placed_twice() -> None:
    history, evidence, deliveries = _world()
    history.attempts[(7, "r-1")].order_ids.add(2)

    assert "orders_placed_twice" in _broken(audit(history, evidence, deliveries, idempotent_upstream=True))


def test_an_order_bought_twice_upstream_is_found() -> None:
    history, evidence, deliveries = _world()
    evidence.orders_per_link["https://x.test/1"] = 2

    assert _broken(audit(history, evidence, deliveries, idempotent_upstream=True)) == {"upstream_bought_twice"}


def test_a_second_refund_or_a_wrong_amount_is_found_and_so_is_a_ledger_mismatch() -> None:
    history, evidence, deliveries = _world()
    evidence.ledger.append(LedgerRow(1, "refund", CHARGE))
    evidence.mismatches.append(LedgerMismatch(7, Decimal("1"), Decimal("2")))

    assert _broken(audit(history, evidence, deliveries, idempotent_upstream=True)) == {"refunds", "ledger"}


def test_a_status_change_that_never_reached_the_receiver_is_lost_and_a_redelivery_is_not() -> None:
    history, evidence, deliveries = _world()
    lost = deliveries.pop()
    deliveries.append(deliveries[0])  # the same webhook-id twice: at-least-once allows it

    checks = {c.name: c for c in audit(history, evidence, deliveries, idempotent_upstream=True)}

    assert _broken(list(checks.values())) == {"webhooks_lost"}
    assert checks["webhooks_lost"].examples == [{"event": lost.webhook_id, "type": lost.type, "order": 2}]
    assert checks["webhooks_redelivered"].count == 1


def test_one_status_change_under_two_event_ids_is_a_duplicate() -> None:
    history, evidence, deliveries = _world()
    twin = StatusEvent("again", evidence.events[0].type, 7, 1, evidence.events[0].payload, True)
    evidence.events.append(twin)
    deliveries.append(Delivery("again", 7, twin.type, deliveries[0].data))

    assert _broken(audit(history, evidence, deliveries, idempotent_upstream=True)) == {"webhooks_duplicated"}


def test_parking_breaks_only_with_an_idempotent_upstream_unless_the_order_was_never_sent() -> None:
    history, evidence, deliveries = _world()
    history.attempts[(7, "r-3")] = Attempt(7, "r-3", "https://x.test/3", 100, sends=1, order_ids={3})
    evidence.orders.append(
        DbOrder(3, 7, "r-3", "https://x.test/3", "unknown", 100, CHARGE, Decimal(0), None, None, "timeout")
    )
    evidence.ledger.append(LedgerRow(3, "reserve", -CHARGE))
    evidence.adds_per_link["https://x.test/3"] = 1

    assert _broken(audit(history, evidence, deliveries, idempotent_upstream=False)) == set()
    assert _broken(audit(history, evidence, deliveries, idempotent_upstream=True)) == {"parked"}
    evidence.adds_per_link["https://x.test/3"] = 0
    assert _broken(audit(history, evidence, deliveries, idempotent_upstream=False)) == {"parked_never_sent"}
