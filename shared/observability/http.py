"""The operations endpoints: `/metrics` (Prometheus), `/healthz` (alive, no I/O), `/readyz` (dependencies answer).

The api mounts `metrics_handler` on its own router (it has its own health probes); the worker, webhooks and
simulator processes run an `OpsServer` on a port of their own (`PANELFLOW_METRICS_PORT_*`):

    server = OpsServer(settings.metrics_host, settings.metrics_port_worker,
                       checks={"database": database_check(pool), "broker": consumer_check(worker.consumer)})
    await server.start()   ...   await server.stop()

A check is an async callable that raises when its dependency is not usable; `/readyz` answers 503 with the
failing checks then. Liveness never runs a check: a database outage must not get a healthy process restarted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from shared.messaging.consumer import Consumer
from shared.supervisor import SUPERVISOR, Supervisor

Check = Callable[[], Awaitable[None]]

CHECK_TIMEOUT_S = 2.0

log = structlog.get_logger(__name__)


class NotReady(Exception):
    pass


def database_check(pool: asyncpg.Pool) -> Check:
    async def check() -> None:
        async with pool.acquire(timeout=CHECK_TIMEOUT_S) as conn:
            await conn.fetchval("SELECT 1", timeout=CHECK_TIMEOUT_S)

    return check


def consumer_check(consumer: Consumer) -> Check:
    """Ready while the consumer holds an open broker connection and is subscribed to its queue."""

    async def check() -> None:
        if not consumer.consuming.is_set():
            raise NotReady(f"not consuming {consumer.queue_name}: broker connection down")

    return check


def loops_check(supervisor: Supervisor = SUPERVISOR) -> Check:
    """Ready while every supervised loop of the process completes rounds (see shared/supervisor.py)."""

    async def check() -> None:
        stalled = supervisor.stalled()
        if stalled:
            listed = ", ".join(f"{name} (no round for {idle:.0f} s)" for name, idle in sorted(stalled.items()))
            raise NotReady(f"loops not making progress: {listed}")

    return check


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(value).encode(), content_type="application/json")


async def metrics_handler(_request: web.Request) -> web.Response:
    # generate_latest walks the registry synchronously; it is small (no per-order series), so it stays on the loop.
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(_request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def run_checks(checks: Mapping[str, Check]) -> dict[str, str]:
    """The failing checks, by name, with their error (empty: ready)."""

    async def one(check: Check) -> str | None:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_S + 1)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return None

    results = await asyncio.gather(*(one(check) for check in checks.values()))
    return {name: error for name, error in zip(checks, results, strict=True) if error is not None}


CHECKS: web.AppKey[dict[str, Check]] = web.AppKey("checks")


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, Check] = request.app[CHECKS]
    failed = await run_checks(checks)
    if failed:
        return _json({"status": "unavailable", "failed": failed}, status=503)
    return _json({"status": "ok"})


def ops_app(checks: Mapping[str, Check]) -> web.Application:
    app = web.Application()
    app[CHECKS] = dict(checks)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/readyz", readyz, allow_head=True)
    return app


class OpsServer:
    """`/metrics`, `/healthz` and `/readyz` on `host:port`; port 0 disables it (nothing is served)."""

    def __init__(self, host: str, port: int, checks: Mapping[str, Check], *, reuse_port: bool = False) -> None:
        self.host = host
        self.port = port
        # Several api processes sharing one public port (SO_REUSEPORT) share the ops port too: each scrape
        # answers for one of them, as their public port does.
        self.reuse_port = reuse_port
        self.app = ops_app(checks)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        if self.port == 0:
            return
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, reuse_port=self.reuse_port or None).start()
        except OSError as exc:
            # Several processes of one kind on one machine (tests, a laptop): the first keeps the port, the
            # others run without metrics rather than not at all. In a container the port is always free.
            log.warning("ops_server_port_unavailable", host=self.host, port=self.port, error=str(exc))
            await runner.cleanup()
            return
        self._runner = runner
        log.info("ops_server_started", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
