"""The private service helpers really stop and restart their server, and keep its data across a restart."""

from __future__ import annotations

import aio_pika
import asyncpg
import pytest
import redis.asyncio as redis_asyncio
import redis.exceptions

from shared.messaging.connection import connect as connect_amqp
from tests.support.private_services import PrivatePostgres, PrivateRabbit, PrivateRedis


async def test_private_rabbit_keeps_durable_messages_across_restart(private_rabbit: PrivateRabbit) -> None:
    connection = await connect_amqp(private_rabbit.url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("probe", durable=True, arguments={"x-queue-type": "quorum"})
        await channel.default_exchange.publish(
            aio_pika.Message(b"survives", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue.name
        )

    await private_rabbit.stop()
    assert not private_rabbit.running()
    with pytest.raises(Exception):  # noqa: B017,PT011 - any connection error: nothing listens
        await connect_amqp(private_rabbit.url, timeout=2)

    await private_rabbit.start()
    connection = await connect_amqp(private_rabbit.url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("probe", durable=True, arguments={"x-queue-type": "quorum"})
        message = await queue.get(timeout=5)
        assert message.body == b"survives"
        await message.ack()


async def test_private_postgres_stops_and_recovers_committed_rows(private_postgres: PrivatePostgres) -> None:
    conn = await asyncpg.connect(private_postgres.url)
    await conn.execute("CREATE TABLE probe (v int); INSERT INTO probe VALUES (42)")
    await conn.close()

    await private_postgres.stop(mode="immediate")
    with pytest.raises(ConnectionRefusedError):
        await asyncpg.connect(private_postgres.url, timeout=2)

    await private_postgres.start()
    conn = await asyncpg.connect(private_postgres.url)
    try:
        assert await conn.fetchval("SELECT v FROM probe") == 42
    finally:
        await conn.close()


async def test_private_redis_goes_down_and_comes_back_empty_on_its_port(private_redis: PrivateRedis) -> None:
    client = redis_asyncio.Redis.from_url(private_redis.url, socket_timeout=2)
    try:
        await client.set("probe", "1")
        assert await client.get("probe") == b"1"

        await private_redis.kill()
        assert not private_redis.running()
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.get("probe")

        await private_redis.start()
        assert await client.get("probe") is None  # no persistence: a restart forgets everything
    finally:
        await client.aclose()
