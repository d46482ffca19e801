"""A RabbitMQ connection that failed to open is closed, not left for aio-pika's `__del__` to close (which cannot
when the garbage collector runs outside the event loop's thread)."""

from __future__ import annotations

import gc

import aio_pika
import pytest

from shared.messaging.connection import connect
from shared.settings import Settings
from tests.support.processes import free_port


def _connections_to(port: int) -> list[aio_pika.Connection]:
    return [o for o in gc.get_objects() if isinstance(o, aio_pika.Connection) and o.url.port == port]


async def test_a_connection_that_failed_to_open_is_closed() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(ConnectionError) as failed:
        await connect(f"amqp://guest:guest@127.0.0.1:{port}/", timeout=2, name="probe")
    assert failed.value.__traceback__ is not None  # keeps the attempt's frames, and its connection, alive
    attempts = _connections_to(port)
    assert attempts
    assert all(c.is_closed for c in attempts)


async def test_a_connection_that_opened_is_usable_and_closes(msettings: Settings) -> None:
    connection = await connect(msettings.amqp_url, timeout=5, name="panelflow-probe")
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"ping"), routing_key=queue.name)
        message = await queue.get(timeout=5)
        assert message.body == b"ping"
    assert connection.is_closed
