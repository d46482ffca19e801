import hashlib
import json
from decimal import Decimal

import pytest

from shared.domain.order_types import (
    FLAT_TYPES,
    ORDER_PARAMS,
    ORDER_TYPES,
    ServiceTerms,
    _canonical_json,
    draft_order,
    fingerprint,
    validate_request_id,
)
from shared.errors import InvalidParameter, MissingParameter


def terms(type_: str, *, rate: str = "1.00", low: int = 10, high: int = 1000, dripfeed: bool = True) -> ServiceTerms:
    return ServiceTerms(id=7, type=type_, rate=Decimal(rate), min_quantity=low, max_quantity=high, dripfeed=dripfeed)


LINK = "https://instagram.com/p/abc"
# type -> (valid parameters, charged units, charge at rate 1.00)
VALID = {
    "Default": ({"link": LINK, "quantity": "100"}, 100, "0.10000"),
    "Package": ({"link": LINK}, 1, "1.00000"),
    "SEO": ({"link": LINK, "quantity": "100", "keywords": "a\nb"}, 100, "0.10000"),
    "Custom Comments": ({"link": LINK, "comments": "\n".join(f"c{i}" for i in range(12))}, 12, "0.01200"),
    "Custom Comments Package": ({"link": LINK, "comments": "nice\ngreat"}, 1, "1.00000"),
    "Mentions": ({"link": LINK, "quantity": "100", "usernames": "alice\nbob"}, 100, "0.10000"),
    "Mentions with Hashtags": (
        {"link": LINK, "quantity": "100", "usernames": "alice", "hashtags": "#x"}, 100, "0.10000",
    ),
    "Mentions Custom List": ({"link": LINK, "usernames": "\n".join(f"u{i}" for i in range(20))}, 20, "0.02000"),
    "Mentions Hashtag": ({"link": LINK, "quantity": "100", "hashtag": "#x"}, 100, "0.10000"),
    "Mentions User Followers": ({"link": LINK, "quantity": "100", "username": "alice"}, 100, "0.10000"),
    "Mentions Media Likers": ({"link": LINK, "quantity": "100", "media": LINK}, 100, "0.10000"),
    "Comment Likes": ({"link": LINK, "quantity": "100", "username": "alice"}, 100, "0.10000"),
    "Comment Replies": ({"link": LINK, "username": "alice", "comments": "\n".join("r" * 11)}, 11, "0.01100"),
    "Poll": ({"link": LINK, "quantity": "100", "answer_number": "2"}, 100, "0.10000"),
    "Invites from Groups": ({"link": LINK, "quantity": "100", "groups": "g1\ng2"}, 100, "0.10000"),
    "Subscriptions": (
        {"username": "alice", "min": "10", "max": "100", "posts": "3", "old_posts": "2", "delay": "30",
         "expiry": "31/12/2027"},
        500,
        "0.50000",
    ),
}  # fmt: skip


def test_every_contract_type_has_a_case() -> None:
    assert set(VALID) == set(ORDER_TYPES)


@pytest.mark.parametrize("type_", sorted(VALID))
def test_valid_order_is_priced_on_its_charged_units(type_: str) -> None:
    params, units, charge = VALID[type_]
    draft = draft_order(params, terms(type_))
    assert draft.quantity == units
    assert draft.charge == Decimal(charge)
    assert draft.type == type_


@pytest.mark.parametrize("type_", sorted(VALID))
def test_each_required_parameter_is_required(type_: str) -> None:
    params, _, _ = VALID[type_]
    for name in params:
        if name in {"old_posts", "expiry"}:
            continue
        reduced = {k: v for k, v in params.items() if k != name}
        with pytest.raises(MissingParameter, match=f"Missing required parameter: {name}"):
            draft_order(reduced, terms(type_))


def test_dripfeed_multiplies_quantity_by_runs() -> None:
    draft = draft_order({"link": LINK, "quantity": "100", "runs": "5", "interval": "30"}, terms("Default"))
    assert draft.quantity == 500
    assert draft.charge == Decimal("0.50000")
    assert draft.params == {"quantity": 100, "runs": 5, "interval": 30}


def test_dripfeed_refused_where_the_service_has_none() -> None:
    with pytest.raises(InvalidParameter, match="Drip-feed"):
        draft_order({"link": LINK, "quantity": "100", "runs": "5", "interval": "30"}, terms("Default", dripfeed=False))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"link": LINK, "quantity": "5"}, "Quantity must be between 10 and 1000"),
        ({"link": LINK, "quantity": "1001"}, "Quantity must be between 10 and 1000"),
        ({"link": LINK, "quantity": "1.5"}, "whole number"),
        ({"link": LINK, "quantity": "-3"}, "whole number"),
        ({"link": "ftp://x.com/a", "quantity": "100"}, "http"),
        ({"link": "javascript:alert(1)", "quantity": "100"}, "http"),
        ({"link": "https://x.com/" + "a" * 1000, "quantity": "100"}, "at most 1000"),
    ],
)
def test_default_validation_errors(params: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        draft_order(params, terms("Default"))


def test_list_parameters_refuse_empty_lines_and_cap_lines() -> None:
    with pytest.raises(InvalidParameter, match="empty lines"):
        draft_order({"link": LINK, "comments": "a\n\nb" + "\nc" * 10}, terms("Custom Comments"))
    with pytest.raises(InvalidParameter, match="at most 20 lines"):
        draft_order({"link": LINK, "comments": "\n".join("x" * 21)}, terms("Custom Comments"), lines_max=20)


def test_subscription_checks_min_max_delay_and_expiry() -> None:
    base = dict(VALID["Subscriptions"][0])
    with pytest.raises(InvalidParameter, match="min must not exceed max"):
        draft_order({**base, "min": "200", "max": "100"}, terms("Subscriptions"))
    with pytest.raises(InvalidParameter, match="delay"):
        draft_order({**base, "delay": "7"}, terms("Subscriptions"))
    with pytest.raises(InvalidParameter, match="expiry"):
        draft_order({**base, "expiry": "2027-12-31"}, terms("Subscriptions"))


def test_fingerprint_normalises_equal_requests_and_separates_different_ones() -> None:
    a = fingerprint({"service": "7", "link": LINK, "quantity": "100", "key": "k1"})
    b = fingerprint({"service": "07", "link": f" {LINK} ", "quantity": "0100", "key": "other", "request_id": "x"})
    c = fingerprint({"service": "7", "link": LINK, "quantity": "101"})
    assert a == b
    assert a != c


@pytest.mark.parametrize("value", ["", "a" * 129, "has space", "naïve"])
def test_request_id_must_be_printable_ascii(value: str) -> None:
    with pytest.raises((MissingParameter, InvalidParameter)):
        validate_request_id(value)


def test_request_id_accepts_printable_ascii() -> None:
    assert validate_request_id("order-42:retry/1") == "order-42:retry/1"


@pytest.mark.parametrize(
    "params",
    [
        {"service": "7", "link": LINK, "quantity": "100"},
        {"link": 'https://x.test/"quoted"\\back', "comments": "ünï\ncödé 😀\n\t\x01", "service": "3"},
        {name: f"{name}-{i}" for i, name in enumerate(reversed(ORDER_PARAMS))},
        {},
    ],
)
def test_fingerprint_bytes_never_change(params: dict[str, str]) -> None:
    """Stored orders keep their params_hash forever: the canonical form is, byte for byte, the sorted compact
    JSON the first release hashed (a retry across an upgrade must still be recognised as the same request)."""
    canonical = {k: params[k] for k in sorted(params)}
    expected = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    assert _canonical_json(canonical) == expected
    assert (
        fingerprint({"service": "7", "link": LINK, "quantity": "100"})
        == hashlib.sha256(
            json.dumps(
                {"link": LINK, "quantity": "100", "service": "7"}, sort_keys=True, separators=(",", ":")
            ).encode()
        ).digest()
    )


def test_an_order_whose_charge_rounds_to_zero_is_refused() -> None:
    cheap = terms("Default", rate="0.001", low=1)
    with pytest.raises(InvalidParameter) as refused:
        draft_order({"link": LINK, "quantity": "4"}, cheap)  # 0.000004
    assert (
        refused.value.message == "Quantity too small: the charge would be below 0.00001 (at least 5 units at this rate)"
    )
    assert draft_order({"link": LINK, "quantity": "5"}, cheap).charge == Decimal("0.00001")
    with pytest.raises(InvalidParameter, match=r"This service cannot be ordered: its charge would be below 0\.00001"):
        draft_order({"link": LINK, "quantity": "100"}, terms("Default", rate="0"))
    with pytest.raises(InvalidParameter, match="cannot be ordered"):
        draft_order({"link": LINK}, terms("Package", rate="0.000004"))


def test_flat_types_are_those_charging_the_rate_whatever_the_quantity() -> None:
    for type_ in ORDER_TYPES:
        params, _units, _charge = VALID[type_]
        flat = draft_order(params, terms(type_)).charge == Decimal("1.00")  # per 1000 units would be far less
        assert (type_ in FLAT_TYPES) == flat, type_
