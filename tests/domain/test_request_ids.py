"""Which request id an `add` is placed under: parameter, `Idempotency-Key` header, or none (classic keys)."""

from __future__ import annotations

import pytest

from shared.domain.order_types import validate_request_id
from shared.domain.request_ids import (
    BOTH_DIFFER,
    HEADER_INVALID,
    MISSING_REQUEST_ID,
    chosen_request_id,
    generated_request_id,
    is_generated,
)
from shared.errors import InvalidParameter


def test_the_parameter_or_the_header_or_both_when_equal() -> None:
    assert chosen_request_id("r-1", None, required=True) == "r-1"
    assert chosen_request_id(None, "r-2", required=True) == "r-2"
    assert chosen_request_id("", "r-2", required=True) == "r-2"
    assert chosen_request_id("r-3", "r-3", required=True) == "r-3"
    assert chosen_request_id("r-4", None, required=False) == "r-4"  # a classic key's id is honoured


def test_none_sent() -> None:
    with pytest.raises(InvalidParameter) as missing:
        chosen_request_id(None, None, required=True)
    assert missing.value.message == MISSING_REQUEST_ID
    assert missing.value.status == 400
    assert chosen_request_id(None, None, required=False) is None
    assert chosen_request_id("", None, required=False) is None


@pytest.mark.parametrize(
    ("param", "header", "message"),
    [
        ("r-1", "r-2", BOTH_DIFFER),
        (None, "has space", HEADER_INVALID),
        (None, "x" * 129, HEADER_INVALID),
        ("r-1", "é", HEADER_INVALID),
        ("has space", None, "request_id must be 1 to 128 printable ASCII characters"),
    ],
)
def test_refused(param: str | None, header: str | None, message: str) -> None:
    for required in (True, False):
        with pytest.raises(InvalidParameter) as refused:
            chosen_request_id(param, header, required=required)
        assert refused.value.message == message


def test_generated_ids_can_never_be_sent_by_a_client() -> None:
    generated = generated_request_id("0123abcd" * 4)
    assert is_generated(generated)
    assert not is_generated("classic-1")
    with pytest.raises(InvalidParameter):
        validate_request_id(generated)
    with pytest.raises(InvalidParameter):
        chosen_request_id(None, generated, required=True)
