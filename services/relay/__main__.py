"""`python -m services.relay`: an outbox relay on its own (run as many as you like).

Each api process runs a relay beside its placer; this process runs one without an api: for api replicas started
with `PANELFLOW_RELAY_ENABLED=false`, or to add relays without adding api replicas (relays share the outbox with
SKIP LOCKED). Its ops port is `PANELFLOW_METRICS_PORT_RELAY` (9104). SIGTERM stops it after its batch.
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from shared.db.readiness import database_check, schema_check
from shared.kit.process import ProcessOps, run_process
from shared.kit.readiness import loops_check
from shared.kit.sampling import Sampler, sample_outbox
from shared.messaging.relay import OutboxRelay
from shared.settings import Settings

log = structlog.get_logger("panelflow.relay")


async def serve(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    relay = OutboxRelay(settings, pool)
    ops = ProcessOps(
        settings,
        "relay",
        settings.metrics_port_relay,
        # No broker check, as in the api: while the broker is away rows wait in the outbox, nothing is lost.
        checks={"database": database_check(pool), "schema": schema_check(pool), "loops": loops_check()},
        samplers=[Sampler(pool, [sample_outbox], settings.metrics_sample_s)],
    )
    await ops.start()
    await relay.start()
    await stop.wait()
    log.info("relay_stopping")
    await relay.stop()
    await ops.stop()


if __name__ == "__main__":
    run_process("relay", serve)
