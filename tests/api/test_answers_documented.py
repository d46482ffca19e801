"""Every action's real answers, on real data, match the answer the document gives for that action (and the
document's 200 as a whole): the positive paths a fuzzer rarely reaches (orders of every type, batches with
per-id errors, webhook endpoints)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from jsonschema import Draft202012Validator

from shared.apidoc import parameters
from shared.apidoc.answers import ANSWERS
from shared.apidoc.document import build
from shared.domain.order_types import ORDER_TYPES
from shared.settings import Settings
from shared.webhooks.ingest import event_data
from shared.webhooks.sender import message_body
from tests.api.conftest import ApiClient, Reply, wait_for_service
from tests.support.factories import make_customer, make_service
from tests.support.webhooks import register

SAMPLES = {
    "link": "https://example.com/p/1",
    "text": "someone",
    "lines": "first\nsecond",
    "count": "5",
    "count0": "0",
    "delay": "30",
    "date": "31/12/2030",
}


class Document:
    def __init__(self, settings: Settings) -> None:
        self.document = build(settings)
        self.components = self.document["components"]

    def errors(self, schema: dict[str, Any], body: Any) -> list[str]:
        # The schema is validated inside a copy of the components, so its "#/components/..." refs resolve.
        validator = Draft202012Validator({**schema, "components": self.components})
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]

    def check(self, reply: Reply, action: str, *, batch: bool = False) -> None:
        assert reply.status == 200, reply.body
        variants = ANSWERS[action]
        schema = variants[-1] if batch else variants[0]
        assert self.errors(schema, reply.body) == [], (action, reply.body)
        whole = self.document["paths"]["/api/v2"]["post"]["responses"]["200"]["content"]["application/json"]
        assert self.errors(whole["schema"], reply.body) == []

    def check_error(self, reply: Reply) -> None:
        assert str(reply.status) in self.document["paths"]["/api/v2"]["post"]["responses"], reply.status
        assert self.errors({"$ref": "#/components/schemas/Error"}, reply.body) == []


@pytest.fixture(scope="module")
def doc(settings: Settings) -> Document:
    return Document(settings)


async def test_order_answers_of_every_type(pool: asyncpg.Pool, client: ApiClient, doc: Document) -> None:
    _, key = await make_customer(pool, balance="1000")
    services = {
        t: await make_service(pool, type=t, rate="0.50", min_quantity=1, max_quantity=1000) for t in ORDER_TYPES
    }
    await wait_for_service(client, key, *services.values())
    doc.check(await client.call(key, "services"), "services")
    orders = []
    for order_type, service in services.items():
        params = {p.name: SAMPLES[p.kind] for p in parameters.ORDER_TYPES[order_type].params}
        placed = await client.call(key, "add", service=service, request_id=f"doc-{service}", **params)
        doc.check(placed, "add")
        orders.append(placed.body["order"])
    doc.check(await client.call(key, "status", order=orders[0]), "status")
    doc.check(await client.call(key, "status", orders=f"{orders[0]},{orders[1]},99999999,abc"), "status", batch=True)
    doc.check_error(await client.call(key, "refill", order=orders[0]))  # pending: not eligible
    doc.check(await client.call(key, "refill", orders=f"{orders[0]},99999999,abc"), "refill", batch=True)
    doc.check_error(await client.call(key, "refill_status", refill=99999999))
    doc.check(await client.call(key, "refill_status", refills="99999999,abc"), "refill_status", batch=True)
    doc.check(await client.call(key, "cancel", orders=f"{orders[0]},99999999,abc"), "cancel")
    doc.check(await client.call(key, "cancel", order=orders[0]), "cancel")  # already canceled: a per-id error
    doc.check(await client.call(key, "status", order=orders[0]), "status")  # Canceled: charge "0"
    doc.check(await client.call(key, "balance"), "balance")


async def test_webhook_answers(pool: asyncpg.Pool, client: ApiClient, doc: Document, settings: Settings) -> None:
    account_id, key = await make_customer(pool)
    local = settings.model_copy(update={"webhooks_allow_http": True, "webhooks_allowed_networks": "127.0.0.0/8"})
    endpoint, _ = await register(pool, local, account_id=account_id, url="http://127.0.0.1:9/hook")
    doc.check(await client.call(key, "webhook.list"), "webhook.list")
    tested = await client.call(key, "webhook.test", webhook=endpoint)
    doc.check(tested, "webhook.test")
    # The event it queued, as the dispatcher will send it, matches the document's `webhooks` entry.
    async with pool.acquire() as conn:
        payload = await conn.fetchval("SELECT payload FROM outbox WHERE id = $1", uuid.UUID(tested.body["event"]))
    sent = json.loads(message_body("webhook.test", datetime.now(UTC), json.loads(event_data(payload))))
    hook = doc.document["webhooks"]["webhook.test"]["post"]["requestBody"]["content"]["application/json"]
    assert doc.errors(hook["schema"], sent) == []
    assert sent["data"]["webhook"] == endpoint
    doc.check(await client.call(key, "webhook.deliveries", webhook=endpoint, limit=5), "webhook.deliveries")
    doc.check(await client.call(key, "webhook.replay", webhook=endpoint, since=0), "webhook.replay")
    doc.check(await client.call(key, "webhook.rotate", webhook=endpoint), "webhook.rotate")
    doc.check(await client.call(key, "webhook.delete", webhook=endpoint), "webhook.delete")
    doc.check_error(await client.call(key, "webhook.add", url="http://127.0.0.1:9/hook"))  # not public: 400
    doc.check_error(await client.call(None, "balance"))  # 401


async def test_a_classic_keys_error_is_the_documented_200(pool: asyncpg.Pool, client: ApiClient, doc: Document) -> None:
    _, key = await make_customer(pool, profile="classic")
    reply = await client.call(key, "status", order=99999999)
    assert reply.status == 200
    whole = doc.document["paths"]["/api/v2"]["post"]["responses"]["200"]
    assert doc.errors(whole["content"]["application/json"]["schema"], reply.body) == []
    header = doc.components["headers"]["X-Error-Status"]["schema"]
    assert "X-Error-Status" in whole["headers"]
    assert doc.errors(header, reply.headers["X-Error-Status"]) == []
    assert reply.headers["X-Error-Status"] == "400"
