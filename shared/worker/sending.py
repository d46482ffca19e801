"""The "about to send" mark of each upstream `add`, committed before the request's first byte is written.

Without it, an order whose worker died after the claim could not be told apart from one whose request went
out, and every such order had to be parked. With it, the sweeper gives never-sent orders back to 'pending'
(`shared.db.orders.submission`). The upstream client awaits `SendMarks.before_send(...)` once its connection is up and
just before it writes the request (aiohttp's request-headers-sent trace signal, which fires before the headers
are written): a connection that could not be made leaves the mark unset, so "not sent" stays provable.

Marks of concurrent calls are written together (one statement per burst), so the cost is one short commit of
latency per call, not one transaction each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from shared.db.orders import submission as sql
from shared.db.pool import DATABASE_UNAVAILABLE

log = structlog.get_logger(__name__)


class SendMarks:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._waiting: list[tuple[int, int, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    def before_send(self, order_id: int, attempt: int) -> Callable[[], Awaitable[str | None]]:
        """The hook for `UpstreamClient.add`: None when the request may go out, else why it must not."""

        async def hook() -> str | None:
            try:
                if await self.mark(order_id, attempt):
                    return None
            except DATABASE_UNAVAILABLE as exc:
                return f"not sent: the database is unavailable, the send could not be recorded ({type(exc).__name__})"
            except Exception as exc:  # whatever failed, the mark may be missing: the request must not go out
                log.exception("send_mark_failed", order_id=order_id, attempt=attempt)
                return f"not sent: the send could not be recorded ({type(exc).__name__})"
            return "not sent: the claim is no longer this attempt's (released or taken over)"

        return hook

    async def mark(self, order_id: int, attempt: int) -> bool:
        """Commit the mark; False when the order is no longer this attempt's to send."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((order_id, attempt, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        # Marks that arrive while a statement runs go together in the next one.
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                async with self._pool.acquire() as conn:
                    mine = await sql.mark_sending(conn, [(order_id, attempt) for order_id, attempt, _ in batch])
            except Exception as exc:  # handed to every caller, which decides (never sends unmarked)
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for order_id, _, future in batch:
                if not future.done():
                    future.set_result(order_id in mine)
