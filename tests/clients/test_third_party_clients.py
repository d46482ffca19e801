"""Classic SMM panel clients we did not write, from PyPI and unmodified, against the real api:

- `smmpy` 0.1.0 (MIT): calls `raise_for_status()`, so only a `classic` key (errors as HTTP 200) lets its user
  see our message; under `strict` it reports "400 Client Error" where an answer is an error;
- `safesmm` 0.1.0 (MIT): reads the error body of any status; under `strict` its `add_order` fails with our
  message saying how to send a request id, and passes with one;
- `babismm` 1.0.1 (MIT, module `smm`, "for any panel using the Perfect Panel or similar API v2 format"): raises
  `SMMAPIError` with the message of an HTTP 200 error answer, and `SMMNetworkError` ("HTTP status error: 400 -
  Bad Request") for any 4xx, so, like smmpy, only a `classic` key lets its user see our message; its `add_order`
  passes extra parameters through, so a `request_id` can be sent with it under `strict`.
All three send `key`, `action` and the order's parameters as a form, as classic panels' clients do.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import requests
import safesmm
import smm
import smmpy

from shared.domain.request_ids import MISSING_REQUEST_ID
from tests.clients.conftest import new_customer
from tests.support.processes import ApiProcess

LINK = "https://instagram.com/p/third-party"


def smmpy_session(url: str, key: str, service: int) -> dict[str, Any]:
    api = smmpy.smm(url, key)
    out: dict[str, Any] = {"services": api.get_services()}
    out["add"] = _outcome(lambda: api.add_order(service, LINK, 100))
    order = out["add"]["order"] if isinstance(out["add"], dict) else None
    if order is None:  # strict: place one the way a strict client must, to exercise the rest
        form = {"key": key, "action": "add", "service": service, "link": LINK, "quantity": 100, "request_id": "r1"}
        order = requests.post(url, data=form, timeout=30).json()["order"]
    out["order"] = order
    return out | _after_add(api, order)


def _after_add(api: Any, order: int) -> dict[str, Any]:
    """The calls after `add` that smmpy and babismm name alike: status, refill and cancel of `order`, refill
    statuses of an id that does not exist, and the balance; a call that raises gives its exception."""
    return {
        "status": api.get_status(order),
        "multi_status": api.get_multi_status([order, 999999999]),
        "refill": _outcome(lambda: api.create_refill(order)),
        "multi_refill": api.create_multi_refill([order]),
        "refill_status": _outcome(lambda: api.get_refill_status(999999999)),
        "multi_refill_status": api.get_multi_refill_status([999999999]),
        "cancel": api.cancel_orders([order]),
        "balance": api.get_balance(),
    }


def _outcome(call: Any) -> Any:
    try:
        return call()
    except Exception as exc:
        return exc


def check_smmpy_common(out: dict[str, Any], service: int) -> None:
    order = out["order"]
    assert any(s["service"] == service for s in out["services"])
    assert out["status"]["status"] == "Pending"
    assert out["multi_status"][str(order)]["status"] == "Pending"
    assert out["multi_status"]["999999999"] == {"error": "Incorrect order ID"}
    assert out["multi_refill"] == [{"order": order, "refill": {"error": "Order not eligible for refill"}}]
    assert out["multi_refill_status"] == [{"refill": 999999999, "status": {"error": "Refill not found"}}]
    assert out["cancel"] == [{"order": order, "cancel": 1}]


async def test_smmpy_with_a_classic_key(api: ApiProcess, pool: asyncpg.Pool, service: int) -> None:
    customer = await new_customer(pool, profile="classic")
    out = await asyncio.to_thread(smmpy_session, api.url + "/api/v2", customer.key, service)
    check_smmpy_common(out, service)
    assert out["add"] == {"order": out["order"]}  # no request_id sent: placed
    # Errors reach its user with our message (they come as HTTP 200).
    assert str(out["refill"]) == "Order not eligible for refill"
    assert str(out["refill_status"]) == "Refill not found"
    assert Decimal(out["balance"]["balance"]) == Decimal("10")  # the one order was canceled while pending
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", customer.account_id) == 1


async def test_smmpy_with_a_strict_key_fails_only_where_it_must(
    api: ApiProcess, pool: asyncpg.Pool, service: int
) -> None:
    customer = await new_customer(pool)
    out = await asyncio.to_thread(smmpy_session, api.url + "/api/v2", customer.key, service)
    check_smmpy_common(out, service)
    # An order without request_id is refused; raise_for_status() hides our message behind the status line.
    assert isinstance(out["add"], Exception)
    assert "400 Client Error" in str(out["add"])
    assert isinstance(out["refill"], Exception)
    assert "400 Client Error" in str(out["refill"])
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", customer.account_id) == 1


def safesmm_session(url: str, key: str, service: int) -> dict[str, Any]:
    api = safesmm.SafeSMM(key, api_url=url)
    out: dict[str, Any] = {"services": api.services(), "balance_before": api.balance()}
    out["add"] = _outcome(lambda: api.add_order(service, LINK, 100))
    out["add_rid"] = api.add_order(service, LINK, 100, request_id="s-1")
    out["add_rid_again"] = api.add_order(service, LINK, 100, request_id="s-1")
    order = out["add_rid"]["order"]
    out["status"] = api.status(order)
    out["multi_status"] = api.multi_status([order])
    out["refill"] = _outcome(lambda: api.refill(order))
    out["cancel"] = api.cancel(order)
    out["balance"] = api.balance()
    return out


@pytest.mark.parametrize("profile", ["strict", "classic"])
async def test_safesmm(api: ApiProcess, pool: asyncpg.Pool, service: int, profile: str) -> None:
    customer = await new_customer(pool, profile=profile)
    out = await asyncio.to_thread(safesmm_session, api.url + "/api/v2", customer.key, service)
    assert any(s["service"] == service for s in out["services"])
    assert Decimal(out["balance_before"]["balance"]) == Decimal("10")
    order = out["add_rid"]["order"]
    assert out["add_rid_again"] == {"order": order}  # the request id it passes through makes a retry safe
    assert out["status"]["status"] == "Pending"
    assert out["multi_status"][str(order)]["status"] == "Pending"
    assert isinstance(out["refill"], safesmm.SafeSMMError)
    assert str(out["refill"]) == "Order not eligible for refill"  # our message, under either profile
    assert out["cancel"] == [{"order": order, "cancel": 1}]
    placed = await pool.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", customer.account_id)
    if profile == "strict":
        assert isinstance(out["add"], safesmm.SafeSMMError)
        assert str(out["add"]) == MISSING_REQUEST_ID  # says what to send
        assert placed == 1
    else:
        assert out["add"]["order"] != order
        assert placed == 2


def babismm_session(url: str, key: str, service: int) -> dict[str, Any]:
    with smm.SMM(url, key) as api:
        out: dict[str, Any] = {"services": api.get_services()}
        out["add"] = _outcome(lambda: api.add_order(service, LINK, 100))
        out["add_rid"] = api.add_order(service, LINK, 100, request_id="b-1")
        out["add_rid_again"] = api.add_order(service, LINK, 100, request_id="b-1")
        out |= _after_add(api, out["add_rid"]["order"])
    return out


@pytest.mark.parametrize("profile", ["strict", "classic"])
async def test_babismm(api: ApiProcess, pool: asyncpg.Pool, service: int, profile: str) -> None:
    customer = await new_customer(pool, profile=profile)
    out = await asyncio.to_thread(babismm_session, api.url + "/api/v2", customer.key, service)
    assert any(s["service"] == service for s in out["services"])
    order = out["add_rid"]["order"]
    assert out["add_rid_again"] == {"order": order}  # the request id it passes through makes a retry safe
    assert out["status"]["status"] == "Pending"
    assert out["multi_status"][str(order)]["status"] == "Pending"
    assert out["multi_status"]["999999999"] == {"error": "Incorrect order ID"}
    assert out["multi_refill"] == [{"order": order, "refill": {"error": "Order not eligible for refill"}}]
    assert out["multi_refill_status"] == [{"refill": 999999999, "status": {"error": "Refill not found"}}]
    assert out["cancel"] == [{"order": order, "cancel": 1}]
    placed = await pool.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", customer.account_id)
    if profile == "classic":
        assert out["add"]["order"] != order  # no request id sent: placed, once
        assert placed == 2
        # Errors come as HTTP 200, so it raises them with our message.
        assert isinstance(out["refill"], smm.SMMAPIError)
        assert str(out["refill"]) == "Order not eligible for refill"
        assert isinstance(out["refill_status"], smm.SMMAPIError)
        assert str(out["refill_status"]) == "Refill not found"
        assert Decimal(out["balance"]["balance"]) == Decimal("9.90")  # one order of 0.10 left, one refunded
    else:
        # A 400 becomes its network error: the status line reaches its user; our message is in the response.
        for name in ("add", "refill", "refill_status"):
            assert isinstance(out[name], smm.SMMNetworkError), name
            assert str(out[name]) == "HTTP status error: 400 - Bad Request", name
        assert out["add"].response.json() == {"error": MISSING_REQUEST_ID}
        assert placed == 1
        assert Decimal(out["balance"]["balance"]) == Decimal("10")
