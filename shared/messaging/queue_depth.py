"""Queue depths read from RabbitMQ now and then: ready messages of each consumer group's queue and of its
dead-letter queue (`panelflow_queue_messages`, `panelflow_dlq_messages`). Runs in the worker process.

A passive declare answers with the message count without creating anything; a queue that does not exist yet
(no consumer has declared it: a fresh broker) holds nothing and counts 0, and closes the channel, so each
queue is asked on a fresh channel of one kept connection.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aio_pika.abc import AbstractConnection
from aiormq.exceptions import ChannelNotFoundEntity

from shared.kit.periodic import Periodic
from shared.messaging import topology
from shared.messaging.connection import connect
from shared.observability import metrics
from shared.settings import Settings

log = structlog.get_logger(__name__)


class QueueDepthSampler:
    def __init__(self, settings: Settings, interval_s: float) -> None:
        self._settings = settings
        self._connection: AbstractConnection | None = None
        self._loop = Periodic("queue-depth-sampler", self.sample_once, every=lambda: interval_s)

    async def sample_once(self) -> None:
        try:
            if self._connection is None or self._connection.is_closed:
                self._connection = await connect(self._settings.amqp_url, timeout=5, name="panelflow-metrics")
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
        except ChannelNotFoundEntity:
            return 0
        else:
            count = queue.declaration_result.message_count
            return int(count or 0)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self._close()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)
