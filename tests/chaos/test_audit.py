"""The audit finds each broken guarantee it looks for, and passes a consistent history."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from chaos.audit import Check, audit
from chaos.evidence import DbOrder, Evidence, LedgerRow, StatusEvent
from chaos.load import Attempt, FinalReads, History
from chaos.receiver import Delivery
from shared.db.accounts import LedgerMismatch

CHARGE = Decimal("0.9")
REFUND = Decimal("0.225")
INITIAL = Decimal("100")


@dataclass
class World:
    history: History
    evidence: Evidence
    deliveries: list[Delivery]
    final: FinalReads

    def checks(self, *, idempotent: bool = True) -> dict[str, Check]:
        found = audit(self.history, self.evidence, self.deliveries, self.final, initial_balance=INITIAL,
                      idempotent_upstream=idempotent)  # fmt: skip
        return {c.name: c for c in found}

    def broken(self, *, idempotent: bool = True) -> set[str]:
        return {name for name, c in self.checks(idempotent=idempotent).items() if c.broken}


def _world() -> World:
    """One account, two orders: #1 completed, #2 partial (remains 250 of 1000); every event delivered once."""
    history = History()
    for n in (1, 2):
        attempt = Attempt(7, f"r-{n}", f"https://x.test/{n}", 1000, sends=1, order_ids={n})
        history.attempts[(7, attempt.request_id)] = attempt
    history.observed[1] = [("Pending", "0.90"), ("In progress", "0.90"), ("Completed", "0.90")]
    orders = [
        DbOrder(1, 7, "r-1", "https://x.test/1", "completed", 1000, CHARGE, Decimal(0), 0, "11", None),
        DbOrder(2, 7, "r-2", "https://x.test/2", "partial", 1000, CHARGE, REFUND, 250, "12", None),
    ]
    ledger = [
        LedgerRow(1, "reserve", -CHARGE),
        LedgerRow(1, "capture", Decimal(0)),
        LedgerRow(2, "reserve", -CHARGE),
        LedgerRow(2, "capture", Decimal(0)),
        LedgerRow(2, "refund", REFUND),
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
    final = FinalReads(
        statuses={1: {"status": "Completed", "charge": "0.90"}, 2: {"status": "Partial", "charge": "0.675"}},
        balances={7: INITIAL - CHARGE - (CHARGE - REFUND)},
    )
    return World(history, evidence, deliveries, final)


def test_a_consistent_history_breaks_nothing() -> None:
    assert _world().broken() == set()


def test_an_acknowledged_order_missing_from_the_database_is_lost() -> None:
    world = _world()
    world.history.attempts[(7, "r-3")] = Attempt(7, "r-3", "https://x.test/3", 100, sends=2, order_ids={3})

    assert world.broken() == {"orders_lost"}


def test_one_request_id_answered_with_two_orders_is_placed_twice() -> None:
    world = _world()
    world.history.attempts[(7, "r-1")].order_ids.add(2)

    assert "orders_placed_twice" in world.broken()


def test_an_order_bought_twice_upstream_is_found() -> None:
    world = _world()
    world.evidence.orders_per_link["https://x.test/1"] = 2

    assert world.broken() == {"upstream_bought_twice"}


def test_a_second_refund_or_a_wrong_amount_is_found_and_so_is_a_ledger_mismatch() -> None:
    world = _world()
    world.evidence.ledger.append(LedgerRow(1, "refund", CHARGE))
    world.evidence.mismatches.append(LedgerMismatch(7, Decimal("1"), Decimal("2")))

    assert world.broken() == {"refunds", "ledger"}


def test_a_status_change_that_never_reached_the_receiver_is_lost_and_a_redelivery_is_not() -> None:
    world = _world()
    lost = world.deliveries.pop()
    world.deliveries.append(world.deliveries[0])  # the same webhook-id twice: at-least-once allows it

    checks = world.checks()

    assert {name for name, c in checks.items() if c.broken} == {"webhooks_lost"}
    assert checks["webhooks_lost"].examples == [{"event": lost.webhook_id, "type": lost.type, "order": 2}]
    assert checks["webhooks_redelivered"].count == 1


def test_one_status_change_under_two_event_ids_is_a_duplicate() -> None:
    world = _world()
    first = world.evidence.events[0]
    world.evidence.events.append(StatusEvent("again", first.type, 7, 1, first.payload, True))
    world.deliveries.append(Delivery("again", 7, first.type, world.deliveries[0].data))

    assert world.broken() == {"webhooks_duplicated"}


def test_a_delivery_whose_data_differ_from_its_event_is_altered() -> None:
    world = _world()
    world.deliveries[0] = Delivery(world.deliveries[0].webhook_id, 7, "order.status_changed", {"order": 1})

    assert world.broken() == {"webhooks_altered"}


def test_parking_breaks_only_with_an_idempotent_upstream_unless_the_order_was_never_sent() -> None:
    world = _world()
    world.history.attempts[(7, "r-3")] = Attempt(7, "r-3", "https://x.test/3", 100, sends=1, order_ids={3})
    world.evidence.orders.append(
        DbOrder(3, 7, "r-3", "https://x.test/3", "unknown", 100, CHARGE, Decimal(0), None, None, "timeout")
    )
    world.evidence.ledger.append(LedgerRow(3, "reserve", -CHARGE))
    world.evidence.adds_per_link["https://x.test/3"] = 1
    world.final.statuses[3] = {"status": "Pending", "charge": "0.90"}  # parked: shown Pending, charge reserved
    world.final.balances[7] -= CHARGE

    assert world.broken(idempotent=False) == set()
    assert world.broken() == {"parked"}
    world.evidence.adds_per_link["https://x.test/3"] = 0
    assert world.broken(idempotent=False) == {"parked_never_sent"}


def test_a_status_that_goes_back_or_a_terminal_one_that_changes_is_found() -> None:
    world = _world()
    world.history.observed[2] = [("Partial", "0.675"), ("In progress", "0.90")]
    assert world.broken() == {"status_went_back"}

    world.history.observed[2] = [("Partial", "0.675"), ("Partial", "0.90")]
    assert world.broken() == {"status_went_back"}


def test_books_that_do_not_balance_from_status_alone_are_found() -> None:
    world = _world()
    world.final.balances[7] += Decimal("0.00001")

    assert world.broken() == {"client_books"}


def test_a_status_other_than_the_last_webhook_said_is_found() -> None:
    world = _world()
    world.final.statuses[1]["status"] = "In progress"

    assert world.broken() == {"final_status_vs_last_webhook"}
