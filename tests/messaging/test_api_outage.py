"""End to end: the real api process accepts an order while its RabbitMQ is down; the order's event reaches
the worker queue once the broker is back (the relay inside the api carries on by itself)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import aiohttp
import asyncpg

from shared.messaging import topology
from shared.messaging.connection import connect as connect_amqp
from shared.settings import Settings
from tests.support.factories import make_customer, make_service
from tests.support.messaging import eventually, unpublished
from tests.support.private_services import PrivateRabbit
from tests.support.processes import ApiProcess


async def test_order_accepted_while_the_broker_is_down_is_published_when_it_is_back(
    private_rabbit: PrivateRabbit, msettings: Settings, messaging_pool: asyncpg.Pool, logs_dir: Path
) -> None:
    _, key = await make_customer(messaging_pool, balance="100")
    service_id = await make_service(messaging_pool, rate="1", min_quantity=10, max_quantity=1000)
    api = await ApiProcess(
        msettings, logs_dir / f"api-broker-down-{uuid.uuid4().hex[:6]}.log", amqp_url=private_rabbit.url
    ).started()
    try:
        await private_rabbit.stop()
        form = {
            "key": key, "action": "add", "service": str(service_id), "link": "https://example.com/p/1",
            "quantity": "100", "request_id": uuid.uuid4().hex,
        }  # fmt: skip
        async with aiohttp.ClientSession() as session, session.post(api.url + "/api/v2", data=form) as resp:
            body = await resp.json()
        assert resp.status == 200, body
        order_id = body["order"]
        assert await unpublished(messaging_pool) == 1  # accepted and kept in the outbox meanwhile

        await private_rabbit.start()

        async def published() -> bool:
            return await unpublished(messaging_pool) == 0

        await eventually(published, timeout=30)
        assert api.alive()
    finally:
        api.stop()

    connection = await connect_amqp(private_rabbit.url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(topology.queue_name(msettings, topology.WORKER_QUEUE), passive=True)
        message = await queue.get(timeout=5)
        await message.ack()
    assert message.type == "order.placed"
    assert json.loads(message.body) == {"order_ids": [order_id]}
