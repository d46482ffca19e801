from decimal import Decimal

import pytest

from shared.domain.money import (
    MINIMUM_CHARGE,
    charges_nothing,
    format_charge,
    format_charge_text,
    format_money,
    order_charge,
    parse_amount,
    partial_refund,
    smallest_payable_quantity,
)


def test_charge_is_rate_per_thousand_rounded_half_up_to_five_places() -> None:
    assert order_charge(Decimal("0.90"), 1000, flat=False) == Decimal("0.90000")
    assert order_charge(Decimal("0.27819"), 1000, flat=False) == Decimal("0.27819")
    # 0.333 * 15 / 1000 = 0.004995 -> half-up at the fifth place
    assert order_charge(Decimal("0.333"), 15, flat=False) == Decimal("0.00500")
    assert order_charge(Decimal("1.23456789"), 1, flat=True) == Decimal("1.23457")


def test_partial_refund_is_charge_times_remains_over_quantity() -> None:
    assert partial_refund(Decimal("0.90000"), 157, 1000) == Decimal("0.14130")
    assert partial_refund(Decimal("1"), 0, 1000) == Decimal("0")
    # remains above quantity (upstream drift) never refunds more than the charge
    assert partial_refund(Decimal("1"), 5000, 1000) == Decimal("1")


def test_format_money_keeps_at_least_two_places() -> None:
    assert format_money(Decimal("100")) == "100.00"
    assert format_money(Decimal("100.84292")) == "100.84292"
    assert format_money(Decimal("0.5")) == "0.50"


def test_format_charge_shows_a_fully_refunded_order_as_zero_as_the_contract_says() -> None:
    assert format_charge(Decimal("0")) == "0"
    assert format_charge(Decimal("0.00000")) == "0"
    assert format_charge(Decimal("2.50000") - Decimal("2.50000")) == "0"
    # Anything else exactly as the other money fields.
    assert format_charge(Decimal("0.27819")) == "0.27819"
    assert format_charge(Decimal("0.65400")) == "0.654"
    assert format_charge(Decimal("2")) == "2.00"
    assert format_charge(Decimal("0.000004")) == "0.00"  # rounds to nothing but is not a refunded order


@pytest.mark.parametrize(
    "text", ["", "abc", "-1", "0", "1.000001", "NaN", "Infinity", "1e1000000", "1e15", "1" * 29, "1e-1000000"]
)
def test_parse_amount_refuses_bad_amounts(text: str) -> None:
    with pytest.raises(ValueError, match="amount"):
        parse_amount(text)


def test_parse_amount_accepts_decimal_text() -> None:
    assert parse_amount(" 10.5 ") == Decimal("10.5")


def test_the_smallest_payable_order_costs_one_smallest_unit() -> None:
    assert Decimal("0.00001") == MINIMUM_CHARGE
    # 0.001 x 4 / 1000 = 0.000004 rounds to 0: nothing; x 5 = 0.000005 rounds half-up to 0.00001.
    assert charges_nothing(Decimal("0.001"), 4, flat=False)
    assert not charges_nothing(Decimal("0.001"), 5, flat=False)
    assert order_charge(Decimal("0.001"), 5, flat=False) == MINIMUM_CHARGE
    assert charges_nothing(Decimal("0"), 10**9, flat=False)
    assert charges_nothing(Decimal("0.000004"), 1, flat=True)
    assert not charges_nothing(Decimal("0.000005"), 1, flat=True)


@pytest.mark.parametrize(
    ("rate", "flat", "least"),
    [
        ("0.001", False, 5),
        ("0.90", False, 1),
        ("0.00333", False, 2),  # 0.00333 x 1 / 1000 rounds to 0, x 2 = 0.00000666 to 0.00001
        ("0.00001", False, 500),
        ("0.00003", False, 167),  # 166 x 0.00003 / 1000 = 0.00000498: still 0
        ("0", False, None),
        ("0.5", True, 1),
        ("0.000001", True, None),
    ],
)
def test_smallest_payable_quantity(rate: str, flat: bool, least: int | None) -> None:
    value = Decimal(rate)
    assert smallest_payable_quantity(value, flat=flat) == least
    if least is not None:
        assert not charges_nothing(value, least, flat=flat)
        assert least == 1 or charges_nothing(value, least - 1, flat=flat)


@pytest.mark.parametrize(
    "text",
    ["0.00000", "0", "-0.00000", "0.00001", "0.09000", "1.50000", "2.00000", "12.34567", "0.67500", "100.00000",
     "10", "7.1", "123456789012345.12345", "999999999999999.99999", "-1.50000", "1.234567"],
)  # fmt: skip
def test_format_charge_text_is_format_charge_of_the_decimal(text: str) -> None:
    assert format_charge_text(text) == format_charge(Decimal(text))


def test_format_charge_text_agrees_on_every_5_place_amount_of_a_range() -> None:
    for units in [*range(0, 20_000, 7), *range(99_990, 100_010), 10**19 - 1]:
        text = f"{units // 100_000}.{units % 100_000:05d}"
        assert format_charge_text(text) == format_charge(Decimal(text)), text
