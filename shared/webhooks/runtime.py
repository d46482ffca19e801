"""The webhooks process's parts wired together: the `webhooks.events` consumer (fan-out into deliveries, in
batches), the dispatcher (sending) and the retention purge. `services/webhooks/__main__.py` only builds and
runs this."""

from __future__ import annotations

import asyncpg
import structlog

from shared.db.pool import HeldConnection
from shared.db.webhook_dispatch import IncomingEvent
from shared.failpoints import Failpoints
from shared.kit.group_commit import GroupCommit, no_results
from shared.logging import context_without_message
from shared.messaging import topology
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import Envelope
from shared.net.guard import AddressGuard
from shared.settings import Settings
from shared.webhooks.dispatcher import Dispatcher
from shared.webhooks.ingest import envelope_event, ingest_batch
from shared.webhooks.retention import RetentionTask
from shared.webhooks.secretbox import SecretBox

log = structlog.get_logger("panelflow.webhooks")


class WebhookService:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        guard: AddressGuard | None = None,
        failpoints: Failpoints | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.failpoints = failpoints if failpoints is not None else Failpoints(settings.failpoints)
        self.dispatcher = Dispatcher(
            settings, pool, guard or AddressGuard(settings.webhooks_allowed_networks), SecretBox(settings)
        )
        # Every unacked message can join one batch: the prefetch is the batch's size.
        batch = max(1, settings.webhook_ingest_batch)
        self.ingester: GroupCommit[IncomingEvent, None] = GroupCommit(
            no_results(self.ingest),
            max_size=batch,
            retry_alone=True,  # one event the database refuses fails (and is redelivered) alone
            context=context_without_message,
        )
        self._ingest_conn = HeldConnection(pool)  # batches are written one at a time
        self.consumer = Consumer(settings, topology.WEBHOOKS_QUEUE, self.handle, prefetch=batch)
        self.retention = RetentionTask(settings, pool)

    async def handle(self, envelope: Envelope) -> None:
        await self.ingester.submit(envelope_event(envelope))

    async def ingest(self, events: list[IncomingEvent]) -> None:
        async with self._ingest_conn.use() as conn:
            created = await ingest_batch(conn, events)
        self.failpoints.hit("webhooks.after_ingest")  # committed, nothing acked yet
        if created:
            self.dispatcher.wake()  # the new deliveries are due now; don't wait for the next poll

    async def start(self) -> None:
        await self.dispatcher.start()
        await self.consumer.start()
        await self.retention.start()
        log.info("webhooks_started")

    async def stop(self) -> None:
        await self.retention.stop()
        await self.consumer.stop()
        await self.ingester.close()
        await self._ingest_conn.close()
        await self.dispatcher.stop()
        log.info("webhooks_stopped")
