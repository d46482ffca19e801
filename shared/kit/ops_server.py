"""The operations endpoints: `/metrics` (Prometheus), `/healthz` (alive, no I/O), `/readyz` (dependencies answer).

Every process runs an `OpsServer` on a port of its own (`PANELFLOW_METRICS_PORT_*`), usually through
`ProcessOps` (shared/kit/process.py):

    server = OpsServer(settings.metrics_host, settings.metrics_port_worker,
                       checks={"database": database_check(pool), "broker": consumer_check(worker.consumer)})
    await server.start()   ...   await server.stop()

The checks are passed in by the process that owns the dependencies (shared/kit/readiness.py); this module knows
none of them. `/readyz` answers 503 with the failing checks and why. Liveness never runs a check: a database
outage must not get a healthy process restarted.

The api also answers `/healthz` and `/readyz` on its public port (`add_probe_routes(app, public=True)`, the same
checks as its ops port), so that probes test the listener that takes the traffic; there `/readyz` names the
failing checks but not their errors (addresses, driver messages are for the cluster, not the internet).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from shared.kit import multiprocess_metrics
from shared.kit.readiness import Check, run_checks

log = structlog.get_logger(__name__)


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(value).encode(), content_type="application/json")


async def metrics_handler(_request: web.Request) -> web.Response:
    # generate_latest walks the registry synchronously; it is small (no per-order series), so it stays on the loop.
    # One of several api processes: every process's numbers (shared/kit/multiprocess_metrics.py).
    body = multiprocess_metrics.scrape() if multiprocess_metrics.enabled() else generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(_request: web.Request) -> web.Response:
    return _json({"status": "ok"})


# The readiness checks of the application serving the probes; set before it serves.
CHECKS: web.AppKey[dict[str, Check]] = web.AppKey("checks")

NOT_READY = "unavailable"


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, Check] = request.app[CHECKS]
    failed = await run_checks(checks)
    if failed:
        return _json({"status": NOT_READY, "failed": failed}, status=503)
    return _json({"status": "ok"})


async def public_readyz(request: web.Request) -> web.Response:
    checks: dict[str, Check] = request.app[CHECKS]
    failed = await run_checks(checks)
    if failed:
        return _json({"status": NOT_READY, "failed": dict.fromkeys(failed, NOT_READY)}, status=503)
    return _json({"status": "ok"})


def add_probe_routes(app: web.Application, *, public: bool = False) -> None:
    """`/healthz` and `/readyz` on `app`, running the checks in `app[CHECKS]`."""
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/readyz", public_readyz if public else readyz, allow_head=True)


def ops_app(checks: Mapping[str, Check]) -> web.Application:
    app = web.Application()
    app[CHECKS] = dict(checks)
    app.router.add_get("/metrics", metrics_handler)
    add_probe_routes(app)
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
