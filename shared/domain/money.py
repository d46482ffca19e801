"""Money arithmetic: Decimal only, 5 decimal places, half-up, as the contract says."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation

from shared.domain.bounds import fits_numeric

PLACES = Decimal("0.00001")
# Balances, charges and ledger amounts are NUMERIC(20, 5).
AMOUNT_COLUMN = (20, 5)
ZERO = Decimal("0")
# The smallest currency unit: no order costs less. One whose charge rounds to 0 is refused, never placed for free.
MINIMUM_CHARGE = PLACES


def quantize(amount: Decimal) -> Decimal:
    return amount.quantize(PLACES, rounding=ROUND_HALF_UP)


def order_charge(rate: Decimal, charged_quantity: int, *, flat: bool) -> Decimal:
    """`rate` is per 1000 units, or the flat price of one package when `flat`."""
    if flat:
        return quantize(rate)
    return quantize(rate * charged_quantity / 1000)


def charges_nothing(rate: Decimal, charged_quantity: int, *, flat: bool) -> bool:
    """Whether an order of this many units at this rate would cost less than MINIMUM_CHARGE (it rounds to 0)."""
    return order_charge(rate, charged_quantity, flat=flat) < MINIMUM_CHARGE


def smallest_payable_quantity(rate: Decimal, *, flat: bool) -> int | None:
    """The fewest units that cost at least MINIMUM_CHARGE at `rate`; None when no quantity does."""
    if flat:
        return None if charges_nothing(rate, 1, flat=True) else 1
    if rate <= 0:
        return None
    # rate x q / 1000 reaches half of the smallest unit, which rounds up to it: q >= 1000 x 0.000005 / rate.
    quantity = max(1, int((1000 * MINIMUM_CHARGE / 2 / rate).to_integral_value(rounding=ROUND_CEILING)))
    while charges_nothing(rate, quantity, flat=False):  # never taken for an exact decimal rate; cheap insurance
        quantity += 1
    return quantity


def partial_refund(charge: Decimal, remains: int, quantity: int) -> Decimal:
    """What a Partial order gives back: charge x remains / quantity, never more than the charge."""
    if quantity <= 0 or remains <= 0:
        return ZERO
    return min(charge, quantize(charge * min(remains, quantity) / quantity))


def parse_amount(text: str) -> Decimal:
    """A positive decimal amount typed by an operator (`10`, `10.5`); ValueError otherwise."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError) as exc:
        raise ValueError(f"not a decimal amount: {text!r}") from exc
    if not value.is_finite() or value <= 0:
        raise ValueError(f"amount must be positive: {text!r}")
    if not fits_numeric(value, *AMOUNT_COLUMN):  # before quantize: 1e1000000 cannot be rounded to 5 places
        raise ValueError(f"amount is too large for a balance (NUMERIC(20, 5)): {text!r}")
    if quantize(value) != value:
        raise ValueError(f"amount has more than 5 decimal places: {text!r}")
    return value


def format_money(amount: Decimal) -> str:
    """Money as the contract's decimal string; trailing zeros kept to 5 places are trimmed to 2 minimum."""
    text = format(quantize(amount), "f")
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if len(frac) < 2:
        frac = frac.ljust(2, "0")
    return f"{whole}.{frac}"


def format_charge(amount: Decimal) -> str:
    """An order's charge after refunds, as `status` and the order events both report it: the contract shows a
    fully refunded (Canceled) order as "0"; any other amount as `format_money`."""
    return "0" if amount == 0 else format_money(amount)


def format_charge_text(amount: str) -> str:
    """`format_charge` of an amount given as its plain decimal text with at most 5 places (as Postgres prints a
    NUMERIC(20, 5): "1.50000"), without a Decimal: the same string `format_charge(Decimal(amount))` gives."""
    whole, _, frac = amount.partition(".")
    frac = frac.rstrip("0")
    if len(frac) > 5 or not whole.lstrip("-").isdigit():  # not the column's shape: the Decimal way decides
        return format_charge(Decimal(amount))
    if not frac and whole.lstrip("-0") == "":
        return "0"
    if len(frac) < 2:
        frac = frac.ljust(2, "0")
    return f"{whole}.{frac}"
