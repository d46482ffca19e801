"""Opening a RabbitMQ connection so that a failed attempt leaves nothing behind.

`aio_pika.connect` drops a connection that failed to open without closing it. Its `__del__` then schedules a
close, which never runs when the garbage collector happens to free it outside the event loop's thread (the
warning "coroutine 'Connection.close' was never awaited"), and while the broker is away every retry leaves one
more. Every connection of ours is opened here: a failed one is closed before the error goes up.
"""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractConnection
from aio_pika.connection import make_url
from aiormq.abc import FieldTable


async def connect(url: str, *, timeout: float, name: str | None = None) -> AbstractConnection:
    """An open connection to `url`, named `name` in the broker's management views."""
    properties: FieldTable | None = {"connection_name": name} if name else None
    connection = aio_pika.Connection(make_url(url), client_properties=properties)
    try:
        await connection.connect(timeout=timeout)
    except BaseException:
        await connection.close()
        raise
    return connection
