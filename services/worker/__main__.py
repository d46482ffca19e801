"""`python -m services.worker`: one worker process (run as many as you like)."""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from shared.crypto.secretbox import PROVIDER_KEY_SETTING
from shared.db.readiness import database_check, schema_check
from shared.failpoints import Failpoints
from shared.kit.process import ProcessOps, run_process
from shared.kit.readiness import loops_check
from shared.kit.sampling import Sampler, sample_worker
from shared.messaging.queue_depth import QueueDepthSampler
from shared.messaging.readiness import consumer_check
from shared.settings import Settings
from shared.worker.runtime import Worker

log = structlog.get_logger("panelflow.worker")


async def serve(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    worker = Worker(settings, pool, Failpoints(settings.failpoints))
    ops = ProcessOps(
        settings,
        "worker",
        settings.metrics_port_worker,
        checks={
            "database": database_check(pool),
            "schema": schema_check(pool),
            "broker": consumer_check(worker.consumer),
            "loops": loops_check(),
        },
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


if __name__ == "__main__":
    run_process("worker", serve, keys=[PROVIDER_KEY_SETTING])
