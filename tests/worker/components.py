"""The worker's use cases built in the test process (against the real database and the simulator over HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from shared.failpoints import Failpoints
from shared.settings import Settings
from shared.worker.cancels import Cancels
from shared.worker.polling import Poller
from shared.worker.refills import Refills
from shared.worker.submission import Submitter
from shared.worker.sweeper import Sweeper
from shared.worker.upstreams import Upstreams


@dataclass
class Parts:
    upstreams: Upstreams
    submitter: Submitter
    poller: Poller
    refills: Refills
    cancels: Cancels
    sweeper: Sweeper


@asynccontextmanager
async def worker_parts(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[Parts]:
    upstreams = Upstreams(pool, settings)
    submitter = Submitter(pool, upstreams, settings, Failpoints())
    refills = Refills(pool, upstreams, settings)
    cancels = Cancels(pool, upstreams, settings)
    try:
        yield Parts(
            upstreams,
            submitter,
            Poller(pool, upstreams, settings),
            refills,
            cancels,
            Sweeper(pool, settings, submitter, refills, cancels),
        )
    finally:
        await upstreams.close()
