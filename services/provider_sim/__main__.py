"""`python -m services.provider_sim`: an upstream panel on `PANELFLOW_SIM_HOST:PANELFLOW_SIM_PORT`."""

from __future__ import annotations

import asyncio

import structlog
import uvloop
from aiohttp import web

from services.provider_sim.app import create_app
from shared.logging import configure_logging
from shared.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings, "provider_sim")
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    structlog.get_logger().info(
        "sim_starting",
        host=settings.sim_host,
        port=settings.sim_port,
        instant=settings.sim_instant,
        completion_s=settings.sim_completion_s,
    )
    # No access log: the simulator must stay cheap at thousands of calls per second (benchmarks).
    web.run_app(
        create_app(settings), host=settings.sim_host, port=settings.sim_port, loop=loop, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
