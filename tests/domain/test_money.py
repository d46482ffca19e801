from decimal import Decimal

import pytest

from shared.domain.money import format_charge, format_money, order_charge, parse_amount, partial_refund


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


@pytest.mark.parametrize("text", ["", "abc", "-1", "0", "1.000001", "NaN", "Infinity"])
def test_parse_amount_refuses_bad_amounts(text: str) -> None:
    with pytest.raises(ValueError, match="amount"):
        parse_amount(text)


def test_parse_amount_accepts_decimal_text() -> None:
    assert parse_amount(" 10.5 ") == Decimal("10.5")
