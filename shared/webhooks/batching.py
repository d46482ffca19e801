"""Group commit: concurrent callers' items written together, one batch at a time.

A caller's `submit` returns once the batch holding its item was written (so a message is still acked only after
the commit that stored it) and raises what writing it raised. Items submitted while a batch is being written
wait for the next one, so batches grow with the load and a lone item is written at once. A batch that fails is
retried one item at a time, so one bad item (or a deadlock victim) fails alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from shared.logging import context_without_message

T = TypeVar("T")


class GroupCommit(Generic[T]):
    def __init__(self, write: Callable[[list[T]], Awaitable[None]], *, max_size: int) -> None:
        self._write = write
        self._max = max(1, max_size)
        self._queue: list[tuple[T, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None:
            # A batch serves many messages: its task carries none of their log fields.
            self._task = asyncio.create_task(self._drain(), context=context_without_message())
        await asyncio.shield(future)

    async def close(self) -> None:
        """Wait until everything submitted so far is written."""
        while self._task is not None:
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        batch: list[tuple[T, asyncio.Future[None]]] = []
        try:
            await asyncio.sleep(0)  # callers woken in the same loop iteration join the first batch
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                await self._write_batch(batch)
            batch = []
        except asyncio.CancelledError:
            # Shut down mid-write: nobody may wait forever (what was not committed is retried by its sender).
            left, self._queue = batch + self._queue, []
            for _, future in left:
                _settle(future, RuntimeError("the batch writer was stopped"))
            raise
        finally:
            self._task = None

    async def _write_batch(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        try:
            await self._write([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            for item, future in batch:
                try:
                    await self._write([item])
                except Exception as alone:
                    _settle(future, alone)
                else:
                    _settle(future, None)
            return
        for _, future in batch:
            _settle(future, None)


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
