"""`python -m services.provider_sim`: an upstream panel on `PANELFLOW_SIM_HOST:PANELFLOW_SIM_PORT`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import structlog
import uvloop
from aiohttp import web

from services.provider_sim.app import create_app
from shared.kit.process import ProcessOps
from shared.logging import configure_logging
from shared.sentry import init_sentry
from shared.settings import Settings


def _ops(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ops(_app: web.Application) -> AsyncIterator[None]:
        # No dependencies: ready whenever it is up.
        server = ProcessOps(settings, "provider_sim", settings.metrics_port_sim, checks={})
        await server.start()
        yield
        await server.stop()

    return ops


def main() -> None:
    settings = Settings()
    configure_logging(settings, "provider_sim")
    init_sentry(settings, "provider_sim")
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    structlog.get_logger().info(
        "sim_starting",
        host=settings.sim_host,
        port=settings.sim_port,
        instant=settings.sim_instant,
        completion_s=settings.sim_completion_s,
        idempotent=settings.sim_idempotent,
    )
    # No access log: the simulator must stay cheap at thousands of calls per second (benchmarks).
    app = create_app(settings)
    app.cleanup_ctx.append(_ops(settings))
    web.run_app(app, host=settings.sim_host, port=settings.sim_port, loop=loop, access_log=None, print=None)


if __name__ == "__main__":
    main()
