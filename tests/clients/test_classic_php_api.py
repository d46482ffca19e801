"""The classic panels' published PHP `Api` class, as it behaves on the wire (tests/clients/php/classic_api.php, a
reconstruction: that class is published as text on panels' pages, in no package registry the set-up can reach),
run unchanged by php-cli against the real api through a recording front: a `classic` key serves every call; a
`strict` key refuses only the order sent without a request id, and its user reads our message saying what to send.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus

import asyncpg

from shared.domain.request_ids import MISSING_REQUEST_ID
from tests.api.conftest import ApiClient
from tests.clients.conftest import Front, new_customer
from tests.clients.test_php_client import HERE, php

CLASSIC_USER_AGENT = "Mozilla/4.0 (compatible; MSIE 5.01; Windows NT 5.0)"
LINK = "https://example.com/p/classic"


async def drive(front: Front, key: str, service: int, fallback_order: int = 0) -> dict[str, Any]:
    script = str(HERE / "drive_classic_api.php")
    return json.loads(await php(script, front.url, key, str(service), str(fallback_order)))


def check_common(out: dict[str, Any], service: int) -> int:
    """What both profiles answer alike; returns the order the calls were made on."""
    order = out["used_order"]
    assert any(s["service"] == service for s in out["services"])
    assert out["status"]["status"] == "Pending"
    assert out["multiStatus"][str(order)]["status"] == "Pending"
    assert out["multiStatus"]["999999999"] == {"error": "Incorrect order ID"}
    assert out["multiRefill"] == [{"order": order, "refill": {"error": "Order not eligible for refill"}}]
    assert out["multiRefillStatus"] == [{"refill": 999999999, "status": {"error": "Refill not found"}}]
    # Errors read from the body whatever the HTTP status: the class never looks at it.
    assert out["refill"] == {"error": "Order not eligible for refill"}
    assert out["refillStatus"] == {"error": "Refill not found"}
    assert out["cancel"] == [{"order": order, "cancel": 1}]
    assert Decimal(out["balance"]["balance"]) == Decimal("10")  # the order was canceled while pending: refunded
    assert out["balance"]["currency"] == "USD"
    return order


def check_wire(front: Front, key: str, service: int, order: int) -> None:
    """Every request is a form POST built by hand (`name=urlencode(value)` joined by `&`) with the classic user
    agent; the order carries no request id; the multi calls join ids with a comma (urlencoded `%2C`)."""
    assert len(front.wire) == 10
    assert {w.user_agent for w in front.wire} == {CLASSIC_USER_AGENT}
    assert {w.content_type for w in front.wire} == {"application/x-www-form-urlencoded"}
    bodies = [w.body.decode() for w in front.wire]
    assert bodies[0] == f"key={key}&action=services"
    assert bodies[1] == f"key={key}&action=add&service={service}&link={quote_plus(LINK)}&quantity=100"
    assert bodies[3] == f"key={key}&action=status&orders={order}%2C999999999"
    assert bodies[8] == f"key={key}&action=cancel&orders={order}"
    assert not any("request_id" in body for body in bodies)


async def test_classic_key_serves_the_classic_class(front: Front, pool: asyncpg.Pool, service: int) -> None:
    customer = await new_customer(pool, profile="classic")
    out = await drive(front, customer.key, service)
    order = check_common(out, service)
    assert out["order"] == {"order": order}  # placed without a request id
    check_wire(front, customer.key, service, order)
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", customer.account_id) == 1


async def test_strict_key_refuses_only_its_order_with_our_message(
    front: Front, client: ApiClient, pool: asyncpg.Pool, service: int
) -> None:
    customer = await new_customer(pool)
    placed = await client.call(customer.key, "add", service=service, link=LINK, quantity=100, request_id="strict-1")
    order = placed.body["order"]
    out = await drive(front, customer.key, service, order)
    assert out["order"] == {"error": MISSING_REQUEST_ID}  # what its user reads: what to send
    assert check_common(out, service) == order
    check_wire(front, customer.key, service, order)
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", customer.account_id) == 1
