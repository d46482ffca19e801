"""The api application: `create_app(settings)` wires the resources (each a `cleanup_ctx`) and the routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from services.api.keys import (
    ACTIONS,
    ADDRESS,
    CATALOG,
    FAILPOINTS,
    KEYS,
    LIMITER,
    PLACER,
    POOL,
    RELAY,
    SETTINGS,
)
from services.api.middlewares import edge
from services.api.protocol import handler_args
from services.api.routes import add_routes
from shared.db.pool import create_pool
from shared.db.readiness import database_check, schema_check
from shared.failpoints import Failpoints
from shared.ingress.auth import KeyCache
from shared.ingress.catalog import Catalog
from shared.ingress.client_address import ClientAddress
from shared.ingress.failures import database_unavailable
from shared.ingress.notifications import Listener
from shared.ingress.ratelimit import RateLimiter
from shared.ingress.registry import load_actions
from shared.kit.ops_server import CHECKS
from shared.kit.process import ProcessOps
from shared.kit.readiness import loops_check
from shared.kit.sampling import Sampler, sample_outbox
from shared.messaging.relay import OutboxRelay
from shared.ordering.placement import Placer
from shared.settings import Settings

log = structlog.get_logger("services.api")

LISTENER_START_WAIT_S = 5.0


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    try:
        pool = await create_pool(settings)
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        # Start anyway (healthz up, readyz and calls 503) and connect once the database is back.
        log.warning("database_unavailable_at_start", error=repr(exc))
        pool = await create_pool(settings.model_copy(update={"db_pool_min": 0}))
    app[POOL] = pool
    yield
    await pool.close()


async def _caches(app: web.Application) -> AsyncIterator[None]:
    settings, pool = app[SETTINGS], app[POOL]
    keys = app[KEYS] = KeyCache(pool, settings)
    catalog = app[CATALOG] = Catalog(pool, settings)
    await catalog.start()
    listener = Listener(
        settings,
        channels={"panelflow_auth": keys.on_notify, "panelflow_catalog": catalog.request_reload},
        on_connect=[keys.clear, catalog.request_reload],
    )
    await listener.start()
    await keys.usage.start()
    # Revocations must take effect at once from the first request on: wait for the LISTEN (not forever, and
    # not at all when the database is down: then every call needing it answers 503 anyway).
    if catalog.loaded:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listener.connected.wait(), timeout=LISTENER_START_WAIT_S)
    yield
    await keys.usage.stop()  # after the server stopped taking requests: the last uses are written
    await listener.stop()
    await catalog.stop()


async def _rate_limits(app: web.Application) -> AsyncIterator[None]:
    app[LIMITER] = RateLimiter(app[SETTINGS])
    yield
    await app[LIMITER].close()


async def _relay(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.relay_enabled:
        yield
        return
    relay = app[RELAY] = OutboxRelay(settings, app[POOL], app[FAILPOINTS])
    await relay.start()
    yield
    await relay.stop()


async def _ops(app: web.Application) -> AsyncIterator[None]:
    settings, pool = app[SETTINGS], app[POOL]
    # /metrics on the ops port only: the public port is the internet's, the ops port the cluster's. The broker is
    # not checked, on purpose: orders go into the outbox while it is away, and the relay publishes them later.
    ops = ProcessOps(
        settings,
        "api",
        settings.metrics_port_api,
        checks={"database": database_check(pool), "schema": schema_check(pool), "loops": loops_check()},
        # The relay runs here, so the api samples the outbox backlog (every replica alike: dashboards take max).
        samplers=[Sampler(pool, [sample_outbox], settings.metrics_sample_s)],
        reuse_port=settings.api_processes > 1,
    )
    app[CHECKS] = ops.checks  # the public port's probes run the same checks
    await ops.start()
    yield
    await ops.stop()


async def _placement(app: web.Application) -> AsyncIterator[None]:
    relay = app.get(RELAY)
    # The relay next door is woken by the placer itself (cheaper commits than a NOTIFY per batch, see Placer).
    placer = app[PLACER] = Placer(app[POOL], app[SETTINGS], wake_relay=relay.wake if relay is not None else None)
    await placer.start()
    yield
    # Runs after the server stopped taking requests: what was accepted is placed before we exit.
    await placer.close()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[edge], handler_args=handler_args())
    app[SETTINGS] = settings
    app[ADDRESS] = ClientAddress(settings.trusted_proxies)
    app[FAILPOINTS] = Failpoints(settings.failpoints)
    app[ACTIONS] = load_actions()
    app.cleanup_ctx.extend([_database, _caches, _rate_limits, _relay, _ops, _placement])
    add_routes(app)
    return app
