"""A standalone outbox relay: `python -m shared.messaging.relay_main`.

The api process runs the relay as a background task; this entry runs one on its own (api replicas with
`PANELFLOW_RELAY_ENABLED=false`, or crash tests that kill a relay at a failpoint). SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio
import signal

from shared.db.pool import create_pool
from shared.logging import configure_logging
from shared.messaging.relay import OutboxRelay
from shared.sentry import init_sentry
from shared.settings import Settings


async def run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await create_pool(settings)
    try:
        relay = OutboxRelay(settings, pool)
        await relay.start()
        await stop.wait()
        await relay.stop()
    finally:
        await pool.close()


def main() -> None:
    settings = Settings()
    configure_logging(settings, "relay")
    init_sentry(settings, "relay")
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
