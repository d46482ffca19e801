"""The charge of a fully refunded order reads the same in `status` and in the order events the api writes."""

from __future__ import annotations

import uuid

import asyncpg

from tests.api.conftest import ApiClient, wait_for_service
from tests.support.factories import make_customer, make_service


async def test_a_canceled_order_charges_zero_in_status_and_in_its_events(client: ApiClient, pool: asyncpg.Pool) -> None:
    service = await make_service(pool, rate="2.00")
    _, key = await make_customer(pool, balance="10")
    await wait_for_service(client, key, service)
    placed = await client.call(
        key, "add", service=service, link="https://t.me/c", quantity=1000, request_id=uuid.uuid4().hex
    )
    assert placed.status == 200, placed.body
    order_id = placed.body["order"]
    assert (await client.call(key, "status", order=order_id)).body["charge"] == "2.00"

    canceled = await client.call(key, "cancel", order=order_id)  # never sent upstream: canceled at once
    assert canceled.body == [{"order": order_id, "cancel": 1}]
    status = await client.call(key, "status", order=order_id)
    assert (status.body["status"], status.body["charge"]) == ("Canceled", "0")
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT event_type, payload FROM outbox WHERE (payload->>'order')::bigint = $1 ORDER BY created_at",
            order_id,
        )
    charges = {r["event_type"]: r["payload"]["charge"] for r in rows}
    # The same string the worker's events carry for a Canceled order (tests/domain, tests/webhooks).
    assert charges == {"order.status_changed": "0", "order.canceled": "0"}
