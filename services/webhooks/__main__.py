"""`python -m services.webhooks`: one webhook dispatcher process (run as many as you like)."""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from shared.crypto.secretbox import WEBHOOK_SECRET_KEY_SETTING
from shared.db.readiness import database_check, schema_check
from shared.kit.process import ProcessOps, run_process
from shared.kit.readiness import loops_check
from shared.kit.sampling import Sampler, sample_webhooks
from shared.messaging.readiness import consumer_check
from shared.settings import Settings
from shared.webhooks.runtime import WebhookService

log = structlog.get_logger("panelflow.webhooks")


async def serve(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    service = WebhookService(settings, pool)
    ops = ProcessOps(
        settings,
        "webhooks",
        settings.metrics_port_webhooks,
        checks={
            "database": database_check(pool),
            "schema": schema_check(pool),
            "broker": consumer_check(service.consumer),
            "loops": loops_check(),
        },
        samplers=[Sampler(pool, [sample_webhooks], settings.metrics_sample_s)],
    )
    await ops.start()
    await service.start()
    await stop.wait()
    log.info("webhooks_stopping")
    await service.stop()
    await ops.stop()


if __name__ == "__main__":
    run_process("webhooks", serve, keys=[WEBHOOK_SECRET_KEY_SETTING])
