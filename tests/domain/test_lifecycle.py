import random
from decimal import Decimal

import pytest

from shared.domain.events import EventType
from shared.domain.lifecycle import (
    Observation,
    OrderView,
    PollSchedule,
    RetrySchedule,
    events_for,
    observe,
    refill_state,
    refund_owed,
    status_event,
)
from shared.domain.statuses import OrderState, RefillState


def order(**changes: object) -> OrderView:
    values: dict[str, object] = {
        "id": 7,
        "account_id": 3,
        "type": "Default",
        "state": OrderState.IN_PROGRESS,
        "quantity": 1000,
        "charge": Decimal("0.90000"),
        "refunded": Decimal("0"),
        "currency": "USD",
    }
    values.update(changes)
    return OrderView(**values)  # type: ignore[arg-type]


def test_partial_refunds_charge_times_remains_over_quantity() -> None:
    outcome = observe(order(), Observation("Partial", start_count=3572, remains=157))
    assert outcome.state is OrderState.PARTIAL
    assert outcome.refund == Decimal("0.14130")
    assert (outcome.start_count, outcome.remains) == (3572, 157)


def test_partial_refund_is_a_share_of_the_charged_quantity_for_drip_feed() -> None:
    # 100 x 5 runs charged 500 units: 250 undelivered is half the charge, not 2.5 times it.
    outcome = observe(order(quantity=500, charge=Decimal("1.00000")), Observation("Partial", remains=250))
    assert outcome.refund == Decimal("0.50000")


def test_canceled_refunds_the_whole_charge_minus_what_was_refunded() -> None:
    assert observe(order(), Observation("Canceled")).refund == Decimal("0.90000")
    assert observe(order(refunded=Decimal("0.10000")), Observation("Canceled")).refund == Decimal("0.80000")
    canceled = observe(order(), Observation("Canceled"))
    assert canceled.remains == 1000  # nothing delivered


def test_completed_refunds_nothing_and_zero_remains_when_unknown() -> None:
    outcome = observe(order(), Observation("Completed", start_count=10))
    assert (outcome.state, outcome.refund, outcome.remains) == (OrderState.COMPLETED, Decimal(0), 0)


@pytest.mark.parametrize("state", [OrderState.COMPLETED, OrderState.PARTIAL, OrderState.CANCELED])
def test_terminal_orders_never_change_again(state: OrderState) -> None:
    outcome = observe(order(state=state, refunded=Decimal("0.9")), Observation("Canceled"))
    assert outcome.state is state
    assert outcome.refund == 0
    assert outcome.held


def test_partial_without_remains_is_held_not_guessed() -> None:
    outcome = observe(order(), Observation("Partial", remains=None))
    assert outcome.state is OrderState.IN_PROGRESS
    assert outcome.refund == 0
    assert outcome.held == "Partial without remains"


def test_unknown_status_is_held() -> None:
    outcome = observe(order(), Observation("Exploded"))
    assert outcome.state is OrderState.IN_PROGRESS
    assert outcome.held is not None


def test_upstream_pending_keeps_a_bought_order_in_progress_and_counters_are_kept() -> None:
    seen = order(state=OrderState.PROCESSING, start_count=5, remains=40)
    outcome = observe(seen, Observation("Pending"))
    assert outcome.state is OrderState.IN_PROGRESS
    assert (outcome.start_count, outcome.remains) == (5, 40)
    assert not observe(seen, Observation("Processing", start_count=5, remains=40)).changes(seen)
    assert observe(seen, Observation("Processing", start_count=5, remains=39)).changes(seen)


def test_subscription_completed_with_undelivered_posts_ends_partial_with_refund() -> None:
    sub = order(type="Subscriptions", quantity=200, charge=Decimal("2.00000"))
    outcome = observe(sub, Observation("Completed", remains=50))
    assert outcome.state is OrderState.PARTIAL
    assert outcome.refund == Decimal("0.50000")
    assert observe(sub, Observation("Completed", remains=0)).state is OrderState.COMPLETED


def test_refund_owed_never_negative_and_never_above_charge() -> None:
    assert refund_owed(order(refunded=Decimal("0.9")), OrderState.CANCELED, None) == 0
    assert refund_owed(order(), OrderState.PARTIAL, 5000) == Decimal("0.90000")
    assert refund_owed(order(), OrderState.COMPLETED, 10) == 0


def test_events_per_public_status_change_plus_terminal_event() -> None:
    assert events_for(OrderState.IN_PROGRESS, OrderState.IN_PROGRESS) == []
    assert events_for(OrderState.SUBMITTING, OrderState.IN_PROGRESS) == [EventType.ORDER_STATUS_CHANGED]
    assert events_for(OrderState.IN_PROGRESS, OrderState.PARTIAL) == [
        EventType.ORDER_STATUS_CHANGED,
        EventType.ORDER_PARTIAL,
    ]
    assert events_for(OrderState.SUBMITTING, OrderState.CANCELED)[-1] is EventType.ORDER_CANCELED
    # parked: internal change, the reseller still sees Pending
    assert events_for(OrderState.SUBMITTING, OrderState.UNKNOWN) == []


def test_status_payload_reports_charge_after_refunds_as_strings() -> None:
    payload = status_event(
        order(), state=OrderState.PARTIAL, refunded=Decimal("0.14130"), start_count=3572, remains=157
    ).to_payload()
    assert payload == {
        "account_id": 3,
        "order": 7,
        "status": "Partial",
        "charge": "0.7587",
        "remains": "157",
        "start_count": "3572",
        "currency": "USD",
    }
    canceled = status_event(
        order(), state=OrderState.CANCELED, refunded=Decimal("0.9"), start_count=None, remains=0
    ).to_payload()
    assert canceled["charge"] == "0"  # as `status` reports a Canceled order
    assert canceled["start_count"] == "0"  # as `status` reports an order the upstream never counted
    bought = status_event(
        order(), state=OrderState.IN_PROGRESS, refunded=Decimal(0), start_count=None, remains=None
    ).to_payload()
    assert (bought["start_count"], bought["remains"]) == ("0", str(order().quantity))  # nothing delivered yet


def test_refill_states() -> None:
    assert refill_state("Completed") is RefillState.COMPLETED
    assert refill_state("Pending") is RefillState.IN_PROGRESS
    assert refill_state("Rejected") is RefillState.REJECTED
    assert refill_state("nonsense") is None


def test_poll_backoff_grows_with_age_within_bounds() -> None:
    schedule = PollSchedule(min_s=5, max_s=1800, age_factor=0.1, jitter=0)
    assert schedule.delay(0) == 5
    assert schedule.delay(600) == 60
    assert schedule.delay(10**7) == 1800
    jittered = PollSchedule(min_s=10, max_s=10, jitter=0.1)
    rng = random.Random(1)
    delays = {jittered.delay(0, rng) for _ in range(50)}
    assert all(9 <= d <= 11 for d in delays)
    assert len(delays) > 1


def test_retry_backoff_is_exponential_and_capped() -> None:
    schedule = RetrySchedule(base_s=10, max_s=100)
    assert [schedule.delay(n) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 80, 100]


def test_upstream_add_params_restore_the_contract_shapes() -> None:
    from shared.domain.lifecycle import upstream_add_params

    assert upstream_add_params(
        provider_service_id="12",
        request_id="r1",
        link="https://x.test/p",
        params={"quantity": 100, "runs": 5, "interval": 30},
    ) == {
        "service": "12",
        "request_id": "r1",
        "link": "https://x.test/p",
        "quantity": "100",
        "runs": "5",
        "interval": "30",
    }
    assert upstream_add_params(
        provider_service_id="3", request_id="r1", link="https://x.test/p", params={"comments": ["a", "b"]}
    ) == {
        "service": "3",
        "request_id": "r1",
        "link": "https://x.test/p",
        "comments": "a\nb",
    }
    sub = upstream_add_params(
        provider_service_id="9", request_id="r1", link=None, params={"username": "u", "min": 10, "expiry": "2026-03-01"}
    )
    assert sub == {"service": "9", "request_id": "r1", "username": "u", "min": "10", "expiry": "01/03/2026"}
