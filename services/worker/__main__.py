"""`python -m services.worker`: one worker process (run as many as you like)."""

from __future__ import annotations

import asyncio
import signal

import structlog
import uvloop

from shared.db.pool import create_pool
from shared.failpoints import Failpoints
from shared.logging import configure_logging
from shared.observability.broker_sampling import QueueDepthSampler
from shared.observability.http import consumer_check, database_check
from shared.observability.runtime import ProcessOps
from shared.observability.sampling import Sampler, sample_worker
from shared.sentry import init_sentry
from shared.settings import Settings
from shared.worker.runtime import Worker

log = structlog.get_logger("panelflow.worker")


async def run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await create_pool(settings)
    try:
        worker = Worker(settings, pool, Failpoints(settings.failpoints))
        ops = ProcessOps(
            settings,
            "worker",
            settings.metrics_port_worker,
            checks={"database": database_check(pool), "broker": consumer_check(worker.consumer)},
            samplers=[
                Sampler(pool, [sample_worker], settings.metrics_sample_s),
                QueueDepthSampler(settings, settings.metrics_sample_s),
            ],
        )
        await ops.start()
        await worker.start()
        await stop.wait()
        log.info("worker_stopping")
        await worker.stop()
        await ops.stop()
    finally:
        await pool.close()


def main() -> None:
    settings = Settings()
    configure_logging(settings, "worker")
    init_sentry(settings, "worker")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(settings))


if __name__ == "__main__":
    main()
