"""clients/python (panelflow_client) against the real api: the sync and async clients, retries that never place
an order twice, typed errors, batch splitting and webhook verification."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from decimal import Decimal

import asyncpg
import pytest
from panelflow_client import (
    AsyncClient,
    AuthenticationError,
    Client,
    Conflict,
    InvalidRequest,
    OrderStatus,
    PanelflowError,
    RateLimited,
    RetryPolicy,
    ServiceUnavailable,
    TransportError,
    WebhookVerificationError,
    verify_webhook,
)

from shared.domain.request_ids import MISSING_REQUEST_ID
from shared.webhooks.signing import generate_secret, sign_headers
from tests.clients.conftest import Front, new_customer
from tests.support.processes import ApiProcess

LINK = "https://instagram.com/p/client"
FAST = RetryPolicy(attempts=4, base=0.05, cap=0.2)


async def order_count(pool: asyncpg.Pool, account_id: int) -> int:
    return await pool.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", account_id)


def sync_round_trip(url: str, key: str, service: int) -> dict[str, object]:
    with Client(url, key, retry=FAST) as api:
        listed = {s.service: s for s in api.services()}
        order = api.add(service, link=LINK, quantity=100)
        return {
            "service": listed[service],
            "balance": api.balance(),
            "order": order,
            "status": api.status(order),
            "statuses": api.statuses([order, 999_999_999]),
            "refill": _error_of(lambda: api.refill(order)),
            "refill_statuses": api.refill_statuses([999_999_999]),
            "cancel": api.cancel([order, 999_999_999]),
        }


def _error_of(call: object) -> PanelflowError | None:
    try:
        call()  # type: ignore[operator]
    except PanelflowError as exc:
        return exc
    return None


async def test_sync_client_speaks_every_action(api: ApiProcess, pool: asyncpg.Pool, service: int) -> None:
    customer = await new_customer(pool)
    got = await asyncio.to_thread(sync_round_trip, api.url + "/api/v2", customer.key, service)
    listed = got["service"]
    assert listed.rate == Decimal("1.00")  # type: ignore[attr-defined]
    assert (listed.min, listed.max, listed.type) == (10, 10_000, "Default")  # type: ignore[attr-defined]
    assert got["balance"].balance == Decimal("9.90")  # type: ignore[attr-defined]
    order = got["order"]
    assert isinstance(order, int)
    status = got["status"]
    assert status == OrderStatus(status="Pending", charge=Decimal("0.10"), start_count=0, remains=100, currency="USD")
    statuses = got["statuses"]
    assert statuses[order] == status  # type: ignore[index]
    assert isinstance(statuses[999_999_999], PanelflowError)  # type: ignore[index]
    assert statuses[999_999_999].message == "Incorrect order ID"  # type: ignore[index]
    refused = got["refill"]
    assert isinstance(refused, InvalidRequest)
    assert refused.status == 400
    assert "not eligible" in refused.message
    assert got["refill_statuses"][999_999_999].message == "Refill not found"  # type: ignore[index]
    cancel = got["cancel"]
    assert cancel[order] == 1  # type: ignore[index]
    assert cancel[999_999_999].message == "Incorrect order ID"  # type: ignore[index]
    # The order was placed under a request id the client made (not a classic order without one).
    request_id = await pool.fetchval("SELECT request_id FROM orders WHERE id = $1", order)
    assert request_id.startswith("py-")


async def test_async_client_and_typed_errors(api: ApiProcess, pool: asyncpg.Pool, service: int) -> None:
    poor = await new_customer(pool, balance="0.01")
    classic = await new_customer(pool, profile="classic", balance="0.01")
    url = api.url + "/api/v2"
    async with AsyncClient(url, poor.key, retry=FAST) as api_poor:
        with pytest.raises(InvalidRequest) as insufficient:
            await api_poor.add(service, link=LINK, quantity=100)
        assert (insufficient.value.status, insufficient.value.message) == (400, "Insufficient balance")
        with pytest.raises(InvalidRequest) as missing:
            await api_poor.call("add", service=service, link=LINK, quantity=100)  # no request id: strict says how
        assert missing.value.message == MISSING_REQUEST_ID
        order = await api_poor.add(service, link=LINK, quantity=10, request_id="mine-1")
        assert await api_poor.add(service, link=LINK, quantity=10, request_id="mine-1") == order
        with pytest.raises(Conflict):
            await api_poor.add(service, link=LINK, quantity=11, request_id="mine-1")
        assert (await api_poor.status(order)).charge == Decimal("0.01")
        assert (await api_poor.balance()).balance == Decimal("0")
    async with AsyncClient(url, "pf_" + uuid.uuid4().hex, retry=FAST) as unknown:
        with pytest.raises(AuthenticationError) as denied:
            await unknown.balance()
        assert (denied.value.status, denied.value.message) == (401, "Invalid API key")
    async with AsyncClient(url, classic.key, retry=FAST) as api_classic:
        # A classic key answers errors with 200 and X-Error-Status: the client raises the same typed error.
        with pytest.raises(InvalidRequest) as classic_error:
            await api_classic.add(service, link=LINK, quantity=100)
        assert (classic_error.value.status, classic_error.value.message) == (400, "Insufficient balance")
    assert await order_count(pool, poor.account_id) == 1
    assert await order_count(pool, classic.account_id) == 0


async def test_lost_answers_are_retried_with_the_same_request_id(
    front: Front, pool: asyncpg.Pool, service: int
) -> None:
    """The api places the order but the answer never arrives, twice: the client retries with the same
    request_id and gets the original order; one order, one charge."""
    customer = await new_customer(pool)
    front.plan = ["lose", "lose"]
    async with AsyncClient(front.url, customer.key, retry=FAST) as client:
        order = await client.add(service, link=LINK, quantity=100)
    assert len(front.forwarded) == 3
    assert len({f["request_id"] for f in front.forwarded}) == 1
    assert await order_count(pool, customer.account_id) == 1
    assert await pool.fetchval("SELECT id FROM orders WHERE account_id = $1", customer.account_id) == order
    balance = await pool.fetchval("SELECT balance FROM accounts WHERE id = $1", customer.account_id)
    assert balance == Decimal("9.90")
    # The sync client does the same.
    front.plan = ["lose"]
    forwarded_before = len(front.forwarded)

    def add_once() -> int:
        with Client(front.url, customer.key, retry=FAST) as api:
            return api.add(service, link=LINK, quantity=200)

    sync = await asyncio.to_thread(add_once)
    sent = front.forwarded[forwarded_before:]
    assert len(sent) == 2
    assert sent[0]["request_id"] == sent[1]["request_id"]
    assert await order_count(pool, customer.account_id) == 2
    assert sync != order


async def test_429_and_503_are_retried_honouring_retry_after(front: Front, pool: asyncpg.Pool, service: int) -> None:
    customer = await new_customer(pool)
    front.plan = ["429:1", "503"]
    started = time.monotonic()
    async with AsyncClient(front.url, customer.key, retry=FAST) as client:
        order = await client.add(service, link=LINK, quantity=100)
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was waited for, not the policy's 0.05 s
    assert front.received == 3
    assert len(front.forwarded) == 1
    assert await order_count(pool, customer.account_id) == 1
    assert isinstance(order, int)
    # When the retries run out the last error is raised, typed.
    front.plan = ["503"] * 4
    async with AsyncClient(front.url, customer.key, retry=FAST) as client:
        with pytest.raises(ServiceUnavailable):
            await client.balance()
    # A classic key's 503 comes as 200 with X-Error-Status: 503, and is retried all the same.
    front.plan = ["classic503", "classic503"]
    received = front.received
    async with AsyncClient(front.url, customer.key, retry=FAST) as client:
        assert (await client.balance()).currency == "USD"
    assert front.received - received == 3
    # A Retry-After longer than the policy allows is not slept through.
    front.plan = ["429:3600"]
    async with AsyncClient(front.url, customer.key, retry=FAST) as client:
        with pytest.raises(RateLimited) as limited:
            await client.balance()
    assert limited.value.retry_after == 3600


async def test_connection_refused_is_retried_then_raised() -> None:
    policy = RetryPolicy(attempts=3, base=0.01, cap=0.02)
    async with AsyncClient("http://127.0.0.1:9/api/v2", "pf_x", retry=policy) as client:
        with pytest.raises(TransportError):
            await client.balance()


async def test_batch_helpers_split_lists_over_100(front: Front, pool: asyncpg.Pool, service: int) -> None:
    customer = await new_customer(pool, balance="100")
    async with AsyncClient(front.url, customer.key, retry=FAST) as client:
        orders = [await client.add(service, link=LINK, quantity=10) for _ in range(3)]
        front.forwarded.clear()
        unknown = list(range(999_000_000, 999_000_247))
        found = await client.statuses(orders + unknown)
        assert [len(f["orders"].split(",")) for f in front.forwarded] == [100, 100, 50]
        assert len(found) == 250
        assert all(isinstance(found[o], OrderStatus) for o in orders)
        assert all(isinstance(found[u], PanelflowError) for u in unknown)
        front.forwarded.clear()
        canceled = await client.cancel(orders + unknown[:140])
        assert [len(f["orders"].split(",")) for f in front.forwarded] == [100, 43]
        assert [canceled[o] for o in orders] == [1, 1, 1]


def test_webhook_verification_with_standardwebhooks() -> None:
    secret, next_secret = generate_secret(), generate_secret()
    body = json.dumps({"type": "order.completed", "timestamp": "2026-11-30T12:00:00Z", "data": {"order": 7}}).encode()
    headers = sign_headers([secret], "evt-1", body)  # what the dispatcher sends
    assert verify_webhook(secret, headers, body)["data"] == {"order": 7}
    assert verify_webhook(secret, {k.title(): v for k, v in headers.items()}, body)["type"] == "order.completed"
    # During a rotation the delivery carries two signatures: either secret verifies it.
    rotating = sign_headers([next_secret, secret], "evt-2", body)
    assert verify_webhook(secret, rotating, body)["data"] == {"order": 7}
    assert verify_webhook([generate_secret(), next_secret], rotating, body)["data"] == {"order": 7}
    refused = [
        (secret, headers, body.replace(b"7", b"8")),  # tampered body
        (generate_secret(), headers, body),  # another secret
        (secret, sign_headers([secret], "evt-3", body, timestamp=int(time.time()) - 600), body),  # too old
        (secret, {"webhook-id": "evt-4"}, body),  # headers missing
        (secret, {**headers, "webhook-signature": "garbage"}, body),
    ]
    for key, sent, payload in refused:
        with pytest.raises(WebhookVerificationError):
            verify_webhook(key, sent, payload)
