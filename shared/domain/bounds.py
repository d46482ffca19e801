"""Bounds of what comes from outside (clients, upstream providers, webhook receivers): numbers and text are
checked here BEFORE they are converted or stored. Pure: no I/O.

Numbers: a decimal is refused on its text (length) and its shape (digits, exponent) before anything turns it
into an int (`Decimal("1e1000000")` costs nothing; `int()` of it takes many seconds), and every integer we
store is range-checked against its Postgres column type first.

Text: client text with NUL, another control character (newlines only where a field is a list of lines) or an
unpaired surrogate is refused naming the parameter; external text (what upstreams and receivers say) is
cleaned instead (NUL, surrogates and other control characters replaced, length capped) so that storing it
cannot fail.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.errors import InvalidParameter

# Postgres integer column types: (lowest, highest).
INT4 = (-(2**31), 2**31 - 1)
INT8 = (-(2**63), 2**63 - 1)
INT4_MAX = INT4[1]
INT8_MAX = INT8[1]

# A decimal with more significant digits than this, or a larger exponent, is nothing we store (NUMERIC(20, 5)
# holds 20 digits; BIGINT 19).
DIGITS_MAX = 40
# Longer texts are not looked at as numbers at all (digits, sign, point, exponent and some white space).
NUMBER_TEXT_MAX = 64
# The client-side integers: ASCII digits only, at most this many (with leading zeros).
CLIENT_INT_DIGITS_MAX = 20

# Characters refused in client text: C0 controls but tab/newline/carriage return, DEL, C1 controls, surrogates
# (a lone one cannot be encoded as UTF-8; a JSON body can carry one as "\ud800").
_BAD_CLIENT_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_NEWLINE = re.compile("[\r\n]")
_TAB = "\t"
# Replaced in external text: NUL and other controls but tab and newlines, and surrogates (from
# `surrogateescape`/`surrogatepass` decoding or JSON escapes).
_BAD_EXTERNAL_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
REPLACEMENT = "\ufffd"


# --- numbers -----------------------------------------------------------------------------------------------


def bounded_decimal(value: Any, *, digits_max: int = DIGITS_MAX) -> Decimal | None:
    """A JSON number or numeric string as an exact Decimal, or None when it is no number or out of bounds.

    Finite, at most `digits_max` significant digits and an adjusted exponent within ±`digits_max`: such a value
    converts to an int or a NUMERIC cheaply. Floats are taken via their repr, never binary arithmetic;
    a decimal comma is read as a point (panels in the wild send both).
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        if value.bit_length() > 4 * digits_max:  # bit_length is O(1): no decimal conversion of a huge int
            return None
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > NUMBER_TEXT_MAX:
            return None
        try:
            number = Decimal(text.replace(",", "."))
        except InvalidOperation:
            return None
    else:
        return None
    if not number.is_finite():
        return None
    if number.is_zero():
        return Decimal(0)  # "0e999999" is zero too, without its exponent
    if len(number.as_tuple().digits) > digits_max or not -digits_max <= number.adjusted() <= digits_max:
        return None
    return number


def bounded_int(value: Any, bounds: tuple[int, int] = INT8) -> int | None:
    """A whole number within `bounds` (a column type), from an int, an integral float/decimal or a numeric
    string (`157`, `"157"`, `"157.0"`); None for anything else (garbage, fractions, out of range)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number: int | None = value
    else:
        decimal = bounded_decimal(value)
        if decimal is None or decimal != decimal.to_integral_value():
            return None
        number = int(decimal)  # safe: at most DIGITS_MAX digits
    low, high = bounds
    return number if number is not None and low <= number <= high else None


def fits_numeric(value: Decimal, precision: int, scale: int) -> bool:
    """Whether `value` fits a NUMERIC(precision, scale) column once rounded to `scale` places."""
    if not value.is_finite():
        return False
    if value.is_zero():
        return True
    if value.adjusted() >= precision - scale:
        return False
    rounded = value.quantize(Decimal(1).scaleb(-scale))  # may round up to the next power of ten
    return rounded.is_zero() or rounded.adjusted() < precision - scale


def parse_client_int(name: str, text: str, *, minimum: int = 0, maximum: int = INT4_MAX) -> int:
    """A client's whole number: ASCII digits only (no sign, no Unicode digit forms), within [minimum, maximum].

    `InvalidParameter` naming the parameter otherwise.
    """
    raw = text.strip()
    if not raw or not (raw.isascii() and raw.isdigit()):
        raise InvalidParameter(f"Parameter {name} must be a whole number")
    if len(raw) > CLIENT_INT_DIGITS_MAX:
        raise InvalidParameter(f"Parameter {name} must be at most {maximum}")
    value = int(raw)
    if value < minimum:
        raise InvalidParameter(f"Parameter {name} must be at least {minimum}")
    if value > maximum:
        raise InvalidParameter(f"Parameter {name} must be at most {maximum}")
    return value


def check_int(name: str, value: int, bounds: tuple[int, int] = INT4) -> int:
    """`value` if its column type (`bounds`) holds it; `InvalidParameter` naming `name` otherwise."""
    low, high = bounds
    if not low <= value <= high:
        raise InvalidParameter(f"Parameter {name} is too large" if value > high else f"Parameter {name} is too small")
    return value


# --- text --------------------------------------------------------------------------------------------------


def client_text_problem(text: str, *, lines: bool = True) -> str | None:
    """What is wrong with a client's text (a phrase to end "Parameter X contains …"), or None when clean.

    `lines`: the field is a list of lines, so newlines (and tabs) are fine; otherwise they are refused too.
    """
    bad = _BAD_CLIENT_CHAR.search(text)
    if bad is not None:
        char = bad.group()
        if char == "\x00":
            return "a NUL character"
        if "\ud800" <= char <= "\udfff":
            return "an unpaired surrogate (not valid Unicode)"
        return "a control character"
    if not lines and (_TAB in text or _NEWLINE.search(text) is not None):
        return "a line break or tab"
    return None


def check_client_text(name: str, text: str, *, lines: bool = True) -> str:
    """`text` if clean (see `client_text_problem`); `InvalidParameter` naming the parameter otherwise."""
    problem = client_text_problem(text, lines=lines)
    if problem is not None:
        raise InvalidParameter(f"Parameter {_printable(name)} contains {problem}")
    return text


def external_text(value: Any, *, limit: int = 1000) -> str:
    """Text from an outside party (an upstream's error message, a receiver's response body) made storable:
    invalid UTF-8 and surrogates replaced, NUL and other control characters replaced, at most `limit`
    characters."""
    if isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value[: limit * 4]).decode("utf-8", errors="replace")
    elif isinstance(value, str):
        text = value
    else:
        text = str(value)
    text = text[:limit]
    return _BAD_EXTERNAL_CHAR.sub(REPLACEMENT, text)


def _printable(name: str) -> str:
    """A parameter name fit to be quoted in an error message (names are client text too)."""
    clean = _BAD_CLIENT_CHAR.sub(REPLACEMENT, name)
    return clean if len(clean) <= 64 else clean[:64] + "…"
