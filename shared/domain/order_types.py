"""Order types of the API v2 contract: which parameters `add` takes for each, and what is charged.

Pure: takes the request's parameters and the service's terms, returns a normalised `OrderDraft` or raises a
`ValidationFailed` with the contract's message.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.domain.bounds import (
    INT4,
    INT4_MAX,
    check_client_text,
    client_text_problem,
    fits_numeric,
    parse_client_int,
)
from shared.domain.money import MINIMUM_CHARGE, order_charge, smallest_payable_quantity
from shared.errors import InvalidParameter, MissingParameter

LINK_MAX = 1000
REQUEST_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")
LINK_RE = re.compile(r"^https?://[^\s/?#]+\S*$", re.IGNORECASE)
SUBSCRIPTION_DELAYS = (0, 5, 10, 15, 30, 60, 90)
# Every parameter any type may take: they alone make the idempotency fingerprint of an `add`.
ORDER_PARAMS = (
    "service", "link", "quantity", "runs", "interval", "keywords", "comments", "usernames", "hashtags",
    "hashtag", "username", "media", "answer_number", "groups", "min", "max", "posts", "old_posts",
    "delay", "expiry",
)  # fmt: skip
_SORTED_ORDER_PARAMS = tuple(sorted(ORDER_PARAMS))
# Parameters that are lists of lines (the contract separates them by \r\n or \n); every other is one line.
LINE_PARAMS = frozenset({"keywords", "comments", "usernames", "hashtags", "groups"})
# Digit strings longer than this are not normalised in the fingerprint (int() of them is refused or slow);
# validation refuses them anyway.
_FINGERPRINT_DIGITS_MAX = 40
# The longest request id the placer takes: a client's (128) or one the api made (shared.domain.request_ids).
REQUEST_ID_STORED_MAX = 200
# orders.charge is NUMERIC(20, 5).
CHARGE_PRECISION, CHARGE_SCALE = 20, 5
# The JSON string encoder of the stdlib (C): `_canonical_json` writes exactly what
# `json.dumps(d, sort_keys=True, separators=(",", ":"))` writes for a dict of strings, without building an
# encoder per call (stored fingerprints must never change: tests/domain pins both to each other).
_json_string = json.encoder.encode_basestring_ascii


@dataclass(frozen=True)
class ServiceTerms:
    """What validation needs to know of a catalog service."""

    id: int
    type: str
    rate: Decimal
    min_quantity: int
    max_quantity: int
    dripfeed: bool


@dataclass(frozen=True)
class OrderDraft:
    service_id: int
    type: str
    link: str | None
    quantity: int  # charged units: what `charge` was computed on and what Partial refunds are a share of
    params: dict[str, Any]
    rate: Decimal
    charge: Decimal


def fingerprint(params: Mapping[str, str]) -> bytes:
    """A hash of the order-defining parameters, normalised so that equal requests hash equal."""
    canonical: dict[str, str] = {}
    for name in _SORTED_ORDER_PARAMS:
        value = params.get(name)
        if value is None:
            continue
        value = value.strip()
        if value.isdecimal() and len(value) <= _FINGERPRINT_DIGITS_MAX:
            # isdecimal, not isdigit: int() takes every decimal digit form ("٣"), but not "²".
            value = str(int(value))
        elif "\n" in value or "\r" in value:
            value = "\n".join(line.strip() for line in value.splitlines() if line.strip())
        canonical[name] = value
    return hashlib.sha256(_canonical_json(canonical).encode()).digest()


def _canonical_json(sorted_strings: dict[str, str]) -> str:
    """`json.dumps(d, sort_keys=True, separators=(",", ":"))` of a dict of strings whose keys come sorted."""
    return "{" + ",".join(f"{_json_string(k)}:{_json_string(v)}" for k, v in sorted_strings.items()) + "}"


def validate_request_id(value: str | None) -> str:
    if value is None or value == "":
        raise MissingParameter("request_id")
    if not REQUEST_ID_RE.match(value):
        raise InvalidParameter("request_id must be 1 to 128 printable ASCII characters")
    return value


class _Reader:
    """Reads typed parameters with the contract's error messages."""

    def __init__(self, params: Mapping[str, str], lines_max: int) -> None:
        self.params = params
        self.lines_max = lines_max

    def text(self, name: str, *, max_len: int = 1000) -> str:
        value = self.params.get(name)
        if value is None or not value.strip():
            raise MissingParameter(name)
        value = value.strip()
        if len(value) > max_len:
            raise InvalidParameter(f"Parameter {name} must be at most {max_len} characters")
        return check_client_text(name, value, lines=name in LINE_PARAMS)

    def optional_text(self, name: str) -> str | None:
        value = self.params.get(name)
        return None if value is None or not value.strip() else self.text(name)

    def integer(self, name: str, *, minimum: int = 0) -> int:
        value = self.params.get(name)
        if value is None or not value.strip():
            raise MissingParameter(name)
        return parse_client_int(name, value, minimum=minimum, maximum=INT4_MAX)

    def optional_integer(self, name: str, *, minimum: int = 0) -> int | None:
        value = self.params.get(name)
        return None if value is None or not value.strip() else self.integer(name, minimum=minimum)

    def link(self, name: str = "link") -> str:
        value = self.text(name, max_len=LINK_MAX)
        if not LINK_RE.match(value):
            raise InvalidParameter("Parameter link must be an http(s) URL")
        return value

    def lines(self, name: str) -> list[str]:
        value = self.text(name, max_len=self.lines_max * 1000)
        lines = [line.strip() for line in value.splitlines()]
        if any(not line for line in lines):
            raise InvalidParameter(f"Parameter {name} must not contain empty lines")
        if len(lines) > self.lines_max:
            raise InvalidParameter(f"Parameter {name} must have at most {self.lines_max} lines")
        return lines


def _check_quantity(quantity: int, terms: ServiceTerms) -> None:
    if not terms.min_quantity <= quantity <= terms.max_quantity:
        raise InvalidParameter(f"Quantity must be between {terms.min_quantity} and {terms.max_quantity}")


# Each builder returns (link, charged units, type parameters, flat price?).
Built = tuple[str | None, int, dict[str, Any], bool]


def _default(r: _Reader, terms: ServiceTerms) -> Built:
    link, quantity = r.link(), r.integer("quantity", minimum=1)
    _check_quantity(quantity, terms)
    params: dict[str, Any] = {"quantity": quantity}
    runs, interval = r.optional_integer("runs", minimum=1), r.optional_integer("interval", minimum=1)
    if runs is not None or interval is not None:
        if not terms.dripfeed:
            raise InvalidParameter("Drip-feed is not available for this service")
        if runs is None or interval is None:
            raise MissingParameter("runs" if runs is None else "interval")
        params.update(runs=runs, interval=interval)
    return link, quantity * (runs or 1), params, False


def _package(r: _Reader, terms: ServiceTerms) -> Built:
    return r.link(), 1, {}, True


def _quantity_with(*extra: str) -> Callable[[_Reader, ServiceTerms], Built]:
    def build(r: _Reader, terms: ServiceTerms) -> Built:
        link, quantity = r.link(), r.integer("quantity", minimum=1)
        _check_quantity(quantity, terms)
        params: dict[str, Any] = {"quantity": quantity}
        for name in extra:
            params[name] = r.text(name)
        return link, quantity, params, False

    return build


def _seo(r: _Reader, terms: ServiceTerms) -> Built:
    link, quantity = r.link(), r.integer("quantity", minimum=1)
    _check_quantity(quantity, terms)
    return link, quantity, {"quantity": quantity, "keywords": r.lines("keywords")}, False


def _poll(r: _Reader, terms: ServiceTerms) -> Built:
    link, quantity = r.link(), r.integer("quantity", minimum=1)
    _check_quantity(quantity, terms)
    return (
        link,
        quantity,
        {"quantity": quantity, "answer_number": r.integer("answer_number", minimum=1)},
        False,
    )


def _lines_of(list_param: str, *extra: str, flat: bool = False) -> Callable[[_Reader, ServiceTerms], Built]:
    def build(r: _Reader, terms: ServiceTerms) -> Built:
        link = r.link()
        params: dict[str, Any] = {name: r.text(name) for name in extra}
        lines = r.lines(list_param)
        params[list_param] = lines
        if flat:
            return link, 1, params, True
        _check_quantity(len(lines), terms)
        return link, len(lines), params, False

    return build


def _subscriptions(r: _Reader, terms: ServiceTerms) -> Built:
    username = r.text("username")
    low, high = r.integer("min", minimum=1), r.integer("max", minimum=1)
    if low > high:
        raise InvalidParameter("Parameter min must not exceed max")
    _check_quantity(low, terms)
    _check_quantity(high, terms)
    posts = r.integer("posts", minimum=1)
    old_posts = r.optional_integer("old_posts") or 0
    delay = r.integer("delay")
    if delay not in SUBSCRIPTION_DELAYS:
        raise InvalidParameter(f"Parameter delay must be one of {', '.join(map(str, SUBSCRIPTION_DELAYS))}")
    params: dict[str, Any] = {
        "username": username, "min": low, "max": high, "posts": posts, "old_posts": old_posts, "delay": delay,
    }  # fmt: skip
    expiry = r.optional_text("expiry")
    if expiry is not None:
        try:
            params["expiry"] = datetime.strptime(expiry, "%d/%m/%Y").date().isoformat()
        except ValueError as exc:
            raise InvalidParameter("Parameter expiry must be a date as d/m/Y") from exc
    return None, high * (posts + old_posts), params, False


BUILDERS: dict[str, Callable[[_Reader, ServiceTerms], Built]] = {
    "Default": _default,
    "Package": _package,
    "SEO": _seo,
    "Custom Comments": _lines_of("comments"),
    "Custom Comments Package": _lines_of("comments", flat=True),
    "Mentions": _quantity_with("usernames"),
    "Mentions with Hashtags": _quantity_with("usernames", "hashtags"),
    "Mentions Custom List": _lines_of("usernames"),
    "Mentions Hashtag": _quantity_with("hashtag"),
    "Mentions User Followers": _quantity_with("username"),
    "Mentions Media Likers": _quantity_with("media"),
    "Comment Likes": _quantity_with("username"),
    "Comment Replies": _lines_of("comments", "username"),
    "Poll": _poll,
    "Invites from Groups": _quantity_with("groups"),
    "Subscriptions": _subscriptions,
}
ORDER_TYPES = tuple(BUILDERS)
# Types whose rate is the flat price of one order, whatever its quantity.
FLAT_TYPES = frozenset({"Package", "Custom Comments Package"})


def unstorable(draft: OrderDraft, request_id: str) -> str | None:
    """Why the orders table could not hold this order (a sentence for the client), or None.

    `draft_order` never makes such a draft; the placer checks every request with this before it joins a group
    commit anyway, because one row the database refuses would fail the whole batch of many accounts' orders.
    """
    if not 0 < draft.quantity <= INT4_MAX:
        return f"The order is too large: at most {INT4_MAX} units in all"
    for amount in (draft.charge, draft.rate):
        if amount < 0 or not fits_numeric(amount, CHARGE_PRECISION, CHARGE_SCALE):
            return "The order is too large: its charge is out of range"
    texts = [("request_id", request_id), ("link", draft.link or "")]
    for name, value in draft.params.items():
        texts.extend((name, v) for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))
    for name, text in texts:
        problem = client_text_problem(text)
        if problem is not None:
            return f"Parameter {name} contains {problem}"
    if len(request_id) > REQUEST_ID_STORED_MAX:
        return "request_id must be 1 to 128 printable ASCII characters"
    return None


def too_small_message(rate: Decimal, *, flat: bool) -> str:
    """Why an order whose charge rounds to 0 is refused (the contract: every order costs at least 0.00001)."""
    least = smallest_payable_quantity(rate, flat=flat)
    if least is None:
        return f"This service cannot be ordered: its charge would be below {MINIMUM_CHARGE}"
    return f"Quantity too small: the charge would be below {MINIMUM_CHARGE} (at least {least} units at this rate)"


def draft_order(params: Mapping[str, str], terms: ServiceTerms, *, lines_max: int = 10_000) -> OrderDraft:
    """Validate `add`'s parameters against the service's type and terms, and price the order."""
    build = BUILDERS.get(terms.type)
    if build is None:  # a catalog row of a type we do not sell is not orderable
        raise InvalidParameter(f"Service type {terms.type} is not supported")
    link, units, type_params, flat = build(_Reader(params, lines_max), terms)
    # Checked here, before the order joins a group commit: a value its column cannot hold must never reach it.
    if not INT4[0] < units <= INT4[1]:
        raise InvalidParameter(f"The order is too large: at most {INT4_MAX} units in all")
    charge = order_charge(terms.rate, units, flat=flat)
    if not fits_numeric(charge, CHARGE_PRECISION, CHARGE_SCALE):
        raise InvalidParameter("The order is too large: its charge is out of range")
    if charge < MINIMUM_CHARGE:
        raise InvalidParameter(too_small_message(terms.rate, flat=flat))
    return OrderDraft(
        service_id=terms.id,
        type=terms.type,
        link=link,
        quantity=units,
        params=type_params,
        rate=terms.rate,
        charge=charge,
    )
