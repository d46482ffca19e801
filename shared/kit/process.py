"""The one entry-point shape of every background process (`python -m services.<name>`), and what each runs
beside its work (`ProcessOps`: the ops server and the metric samplers).

`run_process`: build `Settings`, configure logging and Sentry, open the pool, run the process's `serve` until
SIGTERM/SIGINT, close the pool. `serve` starts its parts, awaits `stop`, then drains them:

    ops = ProcessOps(settings, "worker", settings.metrics_port_worker, checks={...}, samplers=[...])
    await ops.start()    # before the work: /healthz answers while the process starts up
    ...
    await ops.stop()     # after the work drained
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

import asyncpg
import structlog
import uvloop

from shared.crypto.secretbox import SecretBoxError, require_keys
from shared.db.pool import create_pool
from shared.kit.gc_tuning import tune_gc
from shared.kit.ops_server import OpsServer
from shared.kit.readiness import Check
from shared.logging import configure_logging
from shared.observability import metrics
from shared.sentry import init_sentry
from shared.settings import Settings

log = structlog.get_logger(__name__)

Serve = Callable[[Settings, asyncpg.Pool, asyncio.Event], Awaitable[None]]


async def _run(settings: Settings, serve: Serve) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await create_pool(settings)
    try:
        await serve(settings, pool, stop)
    finally:
        await pool.close()


def check_keys(settings: Settings, name: str, keys: Sequence[str]) -> None:
    """Exit 1 with one line on stderr when an encryption key the process needs is missing (outside development)."""
    try:
        require_keys(settings, *keys)
    except SecretBoxError as exc:
        sys.exit(f"panelflow {name}: refusing to start: {exc}")


def run_process(name: str, serve: Serve, *, keys: Sequence[str] = ()) -> None:
    """`keys`: the encryption-key settings (shared.crypto.secretbox) the process needs, checked before anything."""
    settings = Settings()
    configure_logging(settings, name)
    check_keys(settings, name, keys)
    init_sentry(settings, name)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_run(settings, serve))


class Background(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ProcessOps:
    def __init__(
        self,
        settings: Settings,
        process: str,
        port: int,
        *,
        checks: Mapping[str, Check],
        samplers: Sequence[Background] = (),
        reuse_port: bool = False,
    ) -> None:
        self.settings = settings
        self.process = process
        self.checks = dict(checks)
        self.server = OpsServer(settings.metrics_host, port, self.checks, reuse_port=reuse_port)
        self.samplers = list(samplers)

    async def start(self) -> None:
        """Called by every process once it is built and before it serves: the ops server, the samplers, and
        the garbage collector's tuning (shared/kit/gc_tuning.py; logged as `gc_tuned`)."""
        tuning = tune_gc(self.settings.gc_threshold)
        if tuning is not None:
            log.info("gc_tuned", thresholds=list(tuning.thresholds), frozen=tuning.frozen)
        metrics.set_build_info(self.process, self.settings.release)
        await self.server.start()
        for sampler in self.samplers:
            await sampler.start()

    async def stop(self) -> None:
        for sampler in self.samplers:
            await sampler.stop()
        await self.server.stop()
