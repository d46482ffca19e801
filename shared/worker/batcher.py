"""Coalesce concurrent `order.placed` handlers into one submission batch.

The consumer runs up to `amqp_prefetch` handlers at once; each waits here until its batch is recorded, so the
message is still acked only after the commit that settled its order, while the database sees one claim and one
result transaction per batch instead of two per order.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable

import structlog

# Bound by the consumer for the message being handled; a batch serves many messages, so it carries none of them
# (the use case binds each order's own correlation id on its lines).
_MESSAGE_CONTEXT = ("correlation_id", "event_id", "event_type")


class Batcher:
    def __init__(self, run: Callable[[list[int]], Awaitable[object]], *, max_size: int, linger_s: float) -> None:
        self._run = run
        self._max = max(1, max_size)
        self._linger = linger_s
        self._items: list[tuple[int, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: int) -> None:
        """Returns once the batch holding `item` was processed; raises what the batch raised."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._items.append((item, future))
        if len(self._items) >= self._max:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger, self._flush)
        await asyncio.shield(future)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._items = self._items, []
        if items:
            context = contextvars.copy_context()
            context.run(structlog.contextvars.unbind_contextvars, *_MESSAGE_CONTEXT)
            task = asyncio.create_task(self._process(items), context=context)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _process(self, items: list[tuple[int, asyncio.Future[None]]]) -> None:
        try:
            await self._run([item for item, _ in items])
        except Exception as exc:
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
        else:
            for _, future in items:
                if not future.done():
                    future.set_result(None)

    async def close(self) -> None:
        self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
