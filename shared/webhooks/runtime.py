"""The webhooks process's parts wired together: the `webhooks.events` consumer (fan-out into deliveries)
and the dispatcher (sending). `services/webhooks/__main__.py` only builds and runs this."""

from __future__ import annotations

import asyncpg
import structlog

from shared.messaging import topology
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import Envelope
from shared.settings import Settings
from shared.webhooks.dispatcher import Dispatcher
from shared.webhooks.ingest import ingest_envelope
from shared.webhooks.secretbox import SecretBox
from shared.webhooks.ssrf import AddressGuard

log = structlog.get_logger("panelflow.webhooks")


class WebhookService:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, guard: AddressGuard | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.dispatcher = Dispatcher(
            settings, pool, guard or AddressGuard(settings.webhooks_allowed_networks), SecretBox(settings)
        )
        self.consumer = Consumer(settings, topology.WEBHOOKS_QUEUE, self.handle)

    async def handle(self, envelope: Envelope) -> None:
        created = await ingest_envelope(self.pool, envelope)
        if created:
            self.dispatcher.wake()  # the new deliveries are due now; don't wait for the next poll

    async def start(self) -> None:
        await self.dispatcher.start()
        await self.consumer.start()
        log.info("webhooks_started")

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.dispatcher.stop()
        log.info("webhooks_stopped")
