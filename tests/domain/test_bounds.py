"""The bounds of outside input (shared/domain/bounds.py): numbers refused on their shape before any conversion,
integers against their column types, client text refused and external text cleaned."""

from __future__ import annotations

import re
import time
from decimal import Decimal

import pytest

from shared.domain.bounds import (
    INT4,
    INT4_MAX,
    INT8,
    bounded_decimal,
    bounded_int,
    check_client_text,
    check_int,
    client_text_problem,
    external_text,
    fits_numeric,
    parse_client_int,
)
from shared.errors import InvalidParameter


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("157", Decimal(157)), (" 1,5 ", Decimal("1.5")), (0.1, Decimal("0.1")), (12, Decimal(12)),
        (Decimal("2.50"), Decimal("2.50")), ("0e999999999", Decimal(0)), ("1e40", Decimal("1e40")),
        ("1e41", None), ("1e1000000", None), ("1e-1000000", None), ("9" * 41, None), ("1" * 65, None),
        ("NaN", None), ("Infinity", None), ("", None), ("abc", None), (None, None), (True, None), ([1], None),
        (10**200, None),
    ],
)  # fmt: skip
def test_bounded_decimal(value: object, expected: Decimal | None) -> None:
    assert bounded_decimal(value) == expected


@pytest.mark.parametrize("text", ["1e1000000", "9e999999999", "-1e999999999", "1E+999999999"])
def test_a_huge_exponent_costs_nothing(text: str) -> None:
    started = time.perf_counter()
    assert bounded_int(text) is None
    assert time.perf_counter() - started < 0.01  # int() of the Decimal would take seconds to hours


@pytest.mark.parametrize(
    ("value", "bounds", "expected"),
    [
        ("157", INT8, 157), ("157.0", INT8, 157), (157.0, INT8, 157), ("-5", INT8, -5), ("1.5", INT8, None),
        (2**31, INT4, None), (INT4_MAX, INT4, INT4_MAX), (2**63, INT8, None), (-(2**63), INT8, -(2**63)),
        ("Unknown", INT8, None), (False, INT8, None),
    ],
)  # fmt: skip
def test_bounded_int(value: object, bounds: tuple[int, int], expected: int | None) -> None:
    assert bounded_int(value, bounds) == expected


@pytest.mark.parametrize(
    ("value", "fits"),
    [
        ("999999999999999.99999", True), ("999999999999999.999995", False), ("1e15", False), ("-1e14", True),
        ("0", True), ("0.000001", True), ("NaN", False),
    ],
)  # fmt: skip
def test_fits_numeric_20_5(value: str, fits: bool) -> None:
    assert fits_numeric(Decimal(value), 20, 5) is fits


@pytest.mark.parametrize("text", ["²", "٣", "１", "५", "-1", "+1", "1_000", "1.0", " ", "0x10"])
def test_client_ints_are_ascii_digits_only(text: str) -> None:
    with pytest.raises(InvalidParameter, match="Parameter quantity"):
        parse_client_int("quantity", text)


def test_client_ints_within_their_column() -> None:
    assert parse_client_int("runs", " 007 ", minimum=1) == 7
    assert parse_client_int("runs", str(INT4_MAX)) == INT4_MAX
    for text in (str(INT4_MAX + 1), "9" * 20, "1" * 5000):
        with pytest.raises(InvalidParameter, match=f"Parameter runs must be at most {INT4_MAX}"):
            parse_client_int("runs", text)
    with pytest.raises(InvalidParameter, match="Parameter runs must be at least 1"):
        parse_client_int("runs", "0", minimum=1)
    with pytest.raises(InvalidParameter, match="Parameter posts is too large"):
        check_int("posts", 2**31)


@pytest.mark.parametrize(
    ("text", "lines", "problem"),
    [
        ("plain text é 中", False, None), ("a\nb\r\nc\td", True, None), ("a\nb", False, "a line break or tab"),
        ("a\x00b", True, "a NUL character"), ("a\x1bb", True, "a control character"),
        ("a\x7fb", True, "a control character"), ("a\x85b", True, "a control character"),
        ("\ud800", True, "an unpaired surrogate (not valid Unicode)"),
    ],
)  # fmt: skip
def test_client_text(text: str, lines: bool, problem: str | None) -> None:
    assert client_text_problem(text, lines=lines) == problem
    if problem is not None:
        with pytest.raises(InvalidParameter, match=re.escape(f"Parameter link contains {problem}")):
            check_client_text("link", text, lines=lines)


def test_external_text_is_made_storable() -> None:
    assert external_text(b"ok\x00body \xff\xfe") == "ok\ufffdbody \ufffd\ufffd"
    assert external_text("a\ud800b\x1b\nc\td") == "a\ufffdb\ufffd\nc\td"
    assert external_text("x" * 5000, limit=100) == "x" * 100
    assert external_text(12) == "12"
    assert external_text(b"\x00\xff" * 10).encode("utf-8")  # always encodable
