"""Queue depths read from RabbitMQ now and then: ready messages of each consumer group's queue and of its
dead-letter queue (`panelflow_queue_messages`, `panelflow_dlq_messages`). Runs in the worker process.

A passive declare answers with the message count without creating anything; a queue that does not exist yet
closes the channel, so each round uses a fresh channel on one kept connection.
"""

from __future__ import annotations

import asyncio
import contextlib

import aio_pika
import structlog
from aio_pika.abc import AbstractConnection

from shared.messaging import topology
from shared.observability import metrics
from shared.settings import Settings

log = structlog.get_logger(__name__)


class QueueDepthSampler:
    def __init__(self, settings: Settings, interval_s: float) -> None:
        self._settings = settings
        self._interval_s = interval_s
        self._connection: AbstractConnection | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def sample_once(self) -> None:
        try:
            if self._connection is None or self._connection.is_closed:
                self._connection = await aio_pika.connect(
                    self._settings.amqp_url, timeout=5, client_properties={"connection_name": "panelflow-metrics"}
                )
            for spec in topology.QUEUES:
                metrics.QUEUE_MESSAGES.labels(queue=spec.name).set(
                    await self._depth(topology.queue_name(self._settings, spec.name))
                )
                metrics.DLQ_MESSAGES.labels(queue=spec.name).set(
                    await self._depth(topology.dead_letter_queue_name(self._settings, spec.name))
                )
        except Exception as exc:  # broker down: keep the last values; readiness reports the outage
            log.warning("queue_depth_sample_failed", error=f"{type(exc).__name__}: {exc}")
            await self._close()

    async def _depth(self, name: str) -> int:
        assert self._connection is not None
        channel = await self._connection.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
            count = queue.declaration_result.message_count
            return int(count or 0)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="queue-depth-sampler")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self._close()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self.sample_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)
