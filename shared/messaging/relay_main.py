"""A standalone outbox relay: `python -m shared.messaging.relay_main`.

The api process runs the relay as a background task; this entry runs one on its own (api replicas with
`PANELFLOW_RELAY_ENABLED=false`, or crash tests that kill a relay at a failpoint). SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio

import asyncpg

from shared.kit.process import run_process
from shared.messaging.relay import OutboxRelay
from shared.settings import Settings


async def serve(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    relay = OutboxRelay(settings, pool)
    await relay.start()
    await stop.wait()
    await relay.stop()


if __name__ == "__main__":
    run_process("relay", serve)
