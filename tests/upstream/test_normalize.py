"""Status drift and number formats of real panels, normalised to the contract's strings and types."""

from decimal import Decimal

import pytest

from shared.upstream import normalize
from shared.upstream.results import IdError, NotSent, OrderReport, OutOfFunds, RefillReport, Refused


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Pending", "Pending"),
        ("In progress", "In progress"),
        ("In Progress", "In progress"),
        ("in_progress", "In progress"),
        ("inprogress", "In progress"),
        ("Processing", "Processing"),
        ("completed", "Completed"),
        ("COMPLETED", "Completed"),
        ("Partial", "Partial"),
        ("partial", "Partial"),
        ("Canceled", "Canceled"),
        ("Cancelled", "Canceled"),
        ("cancelled", "Canceled"),
        ("Refunded", "Canceled"),
        (" Completed ", "Completed"),
    ],
)
def test_order_status_drift(raw: str, expected: str) -> None:
    assert normalize.order_status(raw) == expected


@pytest.mark.parametrize("raw", ["Done", "", None, 3, "Fail"])
def test_unrecognised_order_status_is_none(raw: object) -> None:
    assert normalize.order_status(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Cancelled", "Canceled"), ("rejected", "Rejected"), ("In Progress", "In progress"), ("completed", "Completed")],
)
def test_refill_status_drift(raw: str, expected: str) -> None:
    assert normalize.refill_status(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(157, 157), ("157", 157), ("157.0", 157), (157.0, 157), (" 3572 ", 3572), (Decimal("12"), 12), ("0", 0)],
)
def test_to_int_accepts_ints_strings_and_integral_floats(raw: object, expected: int) -> None:
    assert normalize.to_int(raw) == expected


@pytest.mark.parametrize("raw", ["Unknown", "", None, "12.5", True, [], "abc"])
def test_to_int_gives_none_for_unknown_values(raw: object) -> None:
    assert normalize.to_int(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.27819", Decimal("0.27819")),
        (0.27819, Decimal("0.27819")),  # a float is read through its repr, not its binary value
        (Decimal("1.10"), Decimal("1.10")),
        (3, Decimal("3")),
        ("0,90", Decimal("0.90")),
    ],
)
def test_to_decimal_is_exact(raw: object, expected: Decimal) -> None:
    value = normalize.to_decimal(raw)
    assert isinstance(value, Decimal)
    assert value == expected


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "x", None, True])
def test_to_decimal_rejects_non_numbers(raw: object) -> None:
    assert normalize.to_decimal(raw) is None


@pytest.mark.parametrize(("raw", "expected"), [(True, True), (1, True), ("1", True), ("true", True), (0, False),
                                               ("0", False), ("false", False), (None, False), ("", False)])  # fmt: skip
def test_to_bool(raw: object, expected: bool) -> None:
    assert normalize.to_bool(raw) is expected


def test_order_report_of_a_drifting_panel() -> None:
    report = normalize.order_report(
        {"charge": 0.27819, "start_count": 3572, "status": "cancelled", "remains": "Unknown", "currency": "USD"}
    )
    assert report == OrderReport(
        status="Canceled", charge=Decimal("0.27819"), start_count=3572, remains=None, currency="USD"
    )


def test_order_report_of_the_contract_shape() -> None:
    report = normalize.order_report(
        {"charge": "0.27819", "start_count": "3572", "status": "Partial", "remains": "157", "currency": "USD"}
    )
    assert report == OrderReport("Partial", Decimal("0.27819"), 3572, 157, "USD")


def test_order_report_errors() -> None:
    assert normalize.order_report({"error": "Incorrect order ID"}) == IdError("Incorrect order ID")
    assert isinstance(normalize.order_report({"status": "Exploded"}), IdError)
    assert isinstance(normalize.order_report("nonsense"), IdError)


def test_refill_report() -> None:
    assert normalize.refill_report("Cancelled") == RefillReport("Canceled")
    assert normalize.refill_report({"error": "Refill not found"}) == IdError("Refill not found")


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("Incorrect link", Refused),
        ("Incorrect service ID", Refused),
        ("Quantity less than minimal 50", Refused),
        ("Not enough funds on balance", OutOfFunds),
        ("Insufficient balance", OutOfFunds),
        ("Invalid API key", NotSent),
        ("Rate limit exceeded", NotSent),
        ("Account suspended", NotSent),
    ],
)
def test_classify_error(message: str, kind: type) -> None:
    result = normalize.classify_error(message)
    assert type(result) is kind


def test_upstream_service_normalises_numbers_types_and_flags() -> None:
    service = normalize.upstream_service(
        {"service": 7, "name": "Likes", "type": "custom comments", "category": "IG", "rate": 0.9,
         "min": "10", "max": 5000, "refill": "1", "cancel": 0, "dripfeed": False}
    )  # fmt: skip
    assert service is not None
    assert (service.service, service.type, service.rate, service.min, service.max) == (
        "7",
        "Custom Comments",
        Decimal("0.9"),
        10,
        5000,
    )
    assert (service.refill, service.cancel, service.dripfeed) == (True, False, False)


@pytest.mark.parametrize(
    "raw",
    [
        {"service": 1, "type": "Teleportation", "rate": "1", "min": "1", "max": "2"},
        {"service": 1, "type": "Default", "rate": "free", "min": "1", "max": "2"},
        {"service": 1, "type": "Default", "rate": "1", "min": "5", "max": "2"},
        {"type": "Default", "rate": "1", "min": "1", "max": "2"},
        "not a service",
        # Beyond our catalog's columns (min/max INTEGER, rate NUMERIC(20, 5)): a catalog sync must not fail on them.
        {"service": 1, "type": "Default", "rate": "1", "min": "1", "max": str(2**31)},
        {"service": 1, "type": "Default", "rate": "1e15", "min": "1", "max": "2"},
        {"service": 1, "type": "Default", "rate": "1", "min": "1", "max": "1e1000000"},
    ],
)
def test_unsellable_services_are_skipped(raw: object) -> None:
    assert normalize.upstream_service(raw) is None


def test_upstream_texts_are_cleaned_and_capped() -> None:
    service = normalize.upstream_service(
        {"service": "7\x00", "name": "Li\x00kes\ud800" + "x" * 5000, "type": "Default", "category": "I\x1bG",
         "rate": "1", "min": 1, "max": 2}
    )  # fmt: skip
    assert service is not None
    assert (service.service, service.name[:8], len(service.name), service.category) == (
        "7\ufffd", "Li\ufffdkes\ufffdx", 1000, "I\ufffdG",
    )  # fmt: skip
    assert normalize.error_message({"error": "No\x00 funds"}) == "No\ufffd funds"
