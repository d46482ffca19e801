"""`python -m services.api`: the API v2 ingress (and the outbox relay) in one process."""

from __future__ import annotations

import asyncio
import sys

import uvloop
from aiohttp import web
from sentry_sdk.integrations.aiohttp import AioHttpIntegration

from services.api import processes, protocol
from services.api.app import create_app
from shared.crypto.secretbox import WEBHOOK_SECRET_KEY_SETTING
from shared.kit.process import check_keys
from shared.logging import configure_logging
from shared.sentry import init_sentry
from shared.settings import Settings

# On SIGTERM the server stops accepting, waits this long for requests in flight, then the placer drains.
SHUTDOWN_TIMEOUT_S = 15.0


def main() -> None:
    settings = Settings()
    configure_logging(settings, "api")
    check_keys(settings, "api", [WEBHOOK_SECRET_KEY_SETTING])
    if settings.api_processes > 1 and not processes.is_child():
        sys.exit(processes.supervise(settings.api_processes))
    init_sentry(settings, "api", integrations=[AioHttpIntegration()])
    protocol.install()  # aiohttp's own 400s as JSON, never echoing the request
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        loop=loop,
        access_log=None,  # one structured line per request comes from our middleware instead
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        print=None,
        reuse_port=settings.api_processes > 1 or None,
    )


if __name__ == "__main__":
    main()
