"""One dedicated connection that LISTENs for cache invalidations (`panelflow_auth`, `panelflow_catalog`).

Notifications sent while the connection is down are lost, so every (re)connect calls `on_connect`: the caches
drop or reload everything then. A periodic ping notices a dead server that never closed the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
import structlog

from shared.db.pool import connect
from shared.kit.supervisor import Beat, stall_after, supervise
from shared.settings import Settings

log = structlog.get_logger(__name__)

PING_S = 5.0
RETRY_MAX_S = 5.0
CONNECT_TIMEOUT_S = 10.0


class Listener:
    def __init__(
        self,
        settings: Settings,
        channels: dict[str, Callable[[str], None]],
        on_connect: list[Callable[[], None]],
    ) -> None:
        self._settings = settings
        self._channels = channels
        self._on_connect = on_connect
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._stopping.clear()
        self._task = supervise(
            "pg-listener",
            self._run,
            stopping=self._stopping,
            stall_after_s=stall_after(self._settings.loop_stall_s, PING_S + RETRY_MAX_S + CONNECT_TIMEOUT_S),
        )

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        handler = self._channels.get(channel)
        if handler is not None:
            handler(str(payload))

    async def _run(self, beat: Beat) -> None:
        delay = 0.2
        while True:
            beat()
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncio.wait_for(connect(self._settings), timeout=CONNECT_TIMEOUT_S)
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                for channel in self._channels:
                    await conn.add_listener(channel, self._dispatch)
                for callback in self._on_connect:
                    callback()
                self.connected.set()
                log.info("listener_connected", channels=sorted(self._channels))
                delay = 0.2
                while not lost.is_set():
                    beat()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=PING_S)
                    if not lost.is_set():
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=PING_S)
                raise ConnectionError("listener connection lost")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                log.warning("listener_disconnected", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _conn: event.set()
