"""The one entry-point shape of every background process (`python -m services.<name>`).

Build `Settings`, configure logging and Sentry, open the pool, run the process's `serve` until SIGTERM/SIGINT,
close the pool. `serve` starts its parts, awaits `stop`, then drains them.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import uvloop

from shared.crypto.secretbox import SecretBoxError, require_keys
from shared.db.pool import create_pool
from shared.logging import configure_logging
from shared.sentry import init_sentry
from shared.settings import Settings

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
