"""`python -m services.webhooks`: one webhook dispatcher process (run as many as you like)."""

from __future__ import annotations

import asyncio
import signal

import structlog
import uvloop

from shared.db.pool import create_pool
from shared.logging import configure_logging
from shared.observability.http import consumer_check, database_check
from shared.observability.runtime import ProcessOps
from shared.observability.sampling import Sampler, sample_webhooks
from shared.sentry import init_sentry
from shared.settings import Settings
from shared.webhooks.runtime import WebhookService

log = structlog.get_logger("panelflow.webhooks")


async def run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await create_pool(settings)
    try:
        service = WebhookService(settings, pool)
        ops = ProcessOps(
            settings,
            "webhooks",
            settings.metrics_port_webhooks,
            checks={"database": database_check(pool), "broker": consumer_check(service.consumer)},
            samplers=[Sampler(pool, [sample_webhooks], settings.metrics_sample_s)],
        )
        await ops.start()
        await service.start()
        await stop.wait()
        log.info("webhooks_stopping")
        await service.stop()
        await ops.stop()
    finally:
        await pool.close()


def main() -> None:
    settings = Settings()
    configure_logging(settings, "webhooks")
    init_sentry(settings, "webhooks")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(settings))


if __name__ == "__main__":
    main()
