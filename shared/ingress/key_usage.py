"""When each API key was last used, kept without a database write per request.

Every request the api authenticates notes its key's id and the wall-clock time in a dict (no I/O); every
`key_last_use_flush_s` (and when the api stops) the noted times go to `api_keys.last_used_at` in one batched
UPDATE, which never moves a time backwards (api processes flush independently). So the stored time is the time of
the key's last request, and appears up to one interval after it; a process that dies without stopping cleanly
loses at most its last interval of notes. A flush the database refuses (down) keeps the notes for the next one.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import asyncpg
import structlog

from shared.db import keys as sql
from shared.kit.periodic import Periodic

log = structlog.get_logger(__name__)

FLUSH_TIMEOUT_S = 5.0


class KeyUsage:
    def __init__(self, pool: asyncpg.Pool, flush_every_s: float) -> None:
        self._pool = pool
        self._noted: dict[int, float] = {}
        self._loop = Periodic("key-last-use", self.flush, every=lambda: flush_every_s, first_delay=flush_every_s)

    def note(self, key_id: int) -> None:
        """Key `key_id` is being used now (the hot path: a dict write)."""
        self._noted[key_id] = time.time()

    async def flush(self) -> int:
        """Write the noted times; how many keys were written (0 when the database could not take them)."""
        if not self._noted:
            return 0
        noted, self._noted = self._noted, {}
        uses = [(key_id, datetime.fromtimestamp(at, UTC)) for key_id, at in noted.items()]
        try:
            async with self._pool.acquire(timeout=FLUSH_TIMEOUT_S) as conn:
                await sql.record_last_use(conn, uses)
        except Exception as exc:  # database down: keep them (behind any newer note) for the next flush
            for key_id, at in noted.items():
                self._noted.setdefault(key_id, at)
            log.warning("key_last_use_flush_failed", keys=len(noted), error=f"{type(exc).__name__}: {exc}")
            return 0
        log.debug("key_last_use_flushed", keys=len(uses))
        return len(uses)

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        """Stop the periodic flush and write what is left."""
        await self._loop.stop()
        await self.flush()
