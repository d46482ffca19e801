"""The ack bookkeeping against a model of the broker: every handled delivery acked exactly once, nothing acked
before its handler returned, as few frames as the finishing order allows."""

from __future__ import annotations

import random

from shared.messaging.acks import AckLedger, AckPlan


class Broker:
    """A channel's unacked deliveries as RabbitMQ keeps them; an ack of an unknown tag is a channel error."""

    def __init__(self, n: int) -> None:
        self.unacked = set(range(1, n + 1))
        self.frames = 0

    def apply(self, plan: AckPlan) -> set[int]:
        acked: set[int] = set()
        if plan.through is not None:
            assert plan.through in self.unacked, "multiple ack of an unknown tag"
            acked |= {t for t in self.unacked if t <= plan.through}
            self.frames += 1
        for tag in plan.singles:
            assert tag in self.unacked - acked, f"ack of an unknown tag {tag}"
            acked.add(tag)
            self.frames += 1
        self.unacked -= acked
        return acked

    def settle(self, tag: int) -> None:  # a nack or a reject, sent on its own
        self.unacked.remove(tag)
        self.frames += 1


def test_handlers_finishing_together_are_acked_with_one_frame() -> None:
    ledger, broker = AckLedger(), Broker(64)
    for tag in range(64, 0, -1):  # any order within the iteration
        ledger.handled(tag)
    plan = ledger.plan()
    assert plan == AckPlan(through=64, singles=[])
    assert broker.apply(plan) == set(range(1, 65))
    assert not ledger.plan()


def test_a_slow_handler_holds_back_nothing_and_is_acked_alone_later() -> None:
    ledger, broker = AckLedger(), Broker(5)
    for tag in (2, 3, 4):
        ledger.handled(tag)
    plan = ledger.plan()
    assert plan == AckPlan(through=None, singles=[2, 3, 4])  # tag 1 is still being handled
    assert broker.apply(plan) == {2, 3, 4}
    ledger.handled(1)
    ledger.handled(5)
    plan = ledger.plan()
    assert plan == AckPlan(through=5, singles=[])  # 2-4 are settled: the run reaches 5
    assert broker.apply(plan) == {1, 5}


def test_a_nacked_delivery_lets_the_run_pass_but_is_never_acked() -> None:
    ledger, broker = AckLedger(), Broker(3)
    ledger.handled(1)
    broker.settle(2)
    ledger.settled(2)
    ledger.handled(3)
    plan = ledger.plan()
    assert plan == AckPlan(through=3, singles=[])
    assert broker.apply(plan) == {1, 3}


def test_the_run_stops_before_a_delivery_still_being_handled() -> None:
    ledger, broker = AckLedger(), Broker(4)
    ledger.handled(1)
    ledger.handled(2)
    ledger.handled(4)
    plan = ledger.plan()
    assert plan == AckPlan(through=2, singles=[4])
    assert broker.apply(plan) == {1, 2, 4}
    assert broker.unacked == {3}


def test_any_finishing_order_acks_each_handled_delivery_exactly_once() -> None:
    for seed in range(500):
        _finish_in_random_order(random.Random(seed))


def _finish_in_random_order(rng: random.Random) -> None:
    n = rng.randint(1, 120)
    order = list(range(1, n + 1))
    rng.shuffle(order)
    nacked = set(rng.sample(order, rng.randint(0, n // 4)))
    ledger, broker = AckLedger(), Broker(n)
    handled: set[int] = set()
    acked: set[int] = set()
    for tag in order:
        if tag in nacked:
            broker.settle(tag)
            ledger.settled(tag)
        else:
            ledger.handled(tag)
            handled.add(tag)
        if rng.random() < 0.3:  # a flush between some of the finishes
            newly = broker.apply(ledger.plan())
            assert newly <= handled, "acked a delivery whose handler had not returned"
            assert not newly & acked
            acked |= newly
    acked |= broker.apply(ledger.plan())
    assert acked == handled
    assert not broker.unacked
    assert not ledger.plan()
    assert broker.frames <= n  # never more frames than one per delivery
