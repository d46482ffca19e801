"""Group commit: many concurrent callers, one commit per batch.

    group = GroupCommit(commit, max_size=256, concurrency=4)
    order_id = await group.submit(request)     # returns once the batch holding `request` was committed

`commit(items)` writes a batch (typically one transaction) and returns one outcome per item, in order: the
item's result, or the exception its caller gets (`no_results` adapts a write that returns nothing). Each caller
gets its own item's outcome. A `commit` that raises fails every caller of its batch with that error, or, with
`retry_alone`, commits each of its items on its own so that one bad item (or a deadlock victim) fails alone.

Batching:
- A batch is taken only once a slot is free (at most `concurrency` batches in flight; None: no limit). Items
  submitted meanwhile wait for the next one, so batches grow with the load and a lone item is committed at
  once. A batch takes its items a few turns of the event loop after the item or the free slot that started
  it, so callers woken together join the same batch; a batch holds at most `max_size`.
- `linger_s` > 0 waits up to that long after the first waiting item for `max_size` items to gather.
- `exclusive(item)` gives a key that never is in two batches in flight at once: an item whose key a batch in
  flight holds waits for the next batch (two batches locking one row would only commit one after the other).
- `drop_abandoned`: a caller cancelled before its batch is committed takes its item out (the item is not
  committed if its batch has not started); otherwise a cancelled caller's item is committed all the same.

Shutdown: `close()` commits everything submitted (no lingering) and waits for the batches in flight. A batch
task that is cancelled (the event loop shutting down) fails its callers and every waiting one with `Stopped`,
and the group commit takes nothing more. Hooks instead of imports: `on_batch(size, seconds)` after every commit
that returned (for metrics); `context()` gives the contextvars a batch runs in (default: those of the code that
built the group commit), since a batch serves many callers and must not carry one caller's log fields.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Commit = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]

# Taking a batch passes over at most this many times `max_size` items held back for their key, so that a long
# queue of one busy key is not rescanned whole each time.
SCAN_FACTOR = 4


class Stopped(RuntimeError):
    def __init__(self) -> None:
        super().__init__("the group commit was stopped before this item was committed")


def no_results(write: Callable[[list[T]], Awaitable[object]]) -> Commit[T, None]:
    """A commit for a `write` that returns nothing: every item of a batch that was written gets None."""

    async def commit(items: list[T]) -> list[None]:
        await write(items)
        return [None] * len(items)

    return commit


@dataclass(eq=False, slots=True)
class _Waiting(Generic[T, R]):
    item: T
    key: Hashable
    future: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        commit: Commit[T, R],
        *,
        max_size: int,
        concurrency: int | None = 1,
        linger_s: float = 0.0,
        retry_alone: bool = False,
        exclusive: Callable[[T], Hashable] | None = None,
        drop_abandoned: bool = False,
        on_batch: Callable[[int, float], None] | None = None,
        context: Callable[[], contextvars.Context] | None = None,
    ) -> None:
        self._commit = commit
        self._max = max(1, max_size)
        self._concurrency = None if concurrency is None else max(1, concurrency)
        self._linger_s = linger_s
        self._retry_alone = retry_alone
        self._exclusive = exclusive
        self._drop_abandoned = drop_abandoned
        self._on_batch = on_batch
        if context is None:
            built_in = contextvars.copy_context()
            context = built_in.copy
        self._context = context
        self._queue: deque[_Waiting[T, R]] = deque()
        self._in_flight: set[asyncio.Task[bool]] = set()
        self._starting: asyncio.Task[bool] | None = None  # the batch in flight that has not taken its items yet
        self._busy: set[Hashable] = set()  # the exclusive keys of the batches in flight
        self._kick_pending = False
        self._timer: asyncio.TimerHandle | None = None
        self._linger_over = False
        self._draining = False
        self._stopped = False

    @property
    def waiting(self) -> int:
        """Items submitted and not yet in a batch."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Batches being committed."""
        return len(self._in_flight)

    async def submit(self, item: T) -> R:
        """The item's result once its batch was committed; raises the item's error (or its batch's)."""
        if self._stopped:
            raise Stopped()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        key = self._exclusive(item) if self._exclusive is not None else None
        self._queue.append(_Waiting(item, key, future))
        if not self._kick_pending:
            self._kick_pending = True
            loop.call_soon(self._kick)
        if self._drop_abandoned:
            return await future
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Commit everything submitted (without lingering) and wait until no batch is in flight."""
        self._draining = True
        while True:
            self._kick()
            if not self._in_flight:
                return
            await asyncio.wait(set(self._in_flight))

    # --- taking batches ------------------------------------------------------------------------------------------

    def _kick(self) -> None:
        self._kick_pending = False
        if self._starting is not None or self._stopped or not self._queue or not self._slot_free():
            return  # a batch about to take, nothing to take, or no slot: a batch ending or a caller kicks again
        if self._linger_s > 0 and not (self._draining or self._linger_over) and len(self._queue) < self._max:
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._linger_s, self._lingered)
            return
        task = asyncio.create_task(self._run(), context=self._context())
        self._starting = task
        self._in_flight.add(task)
        task.add_done_callback(self._batch_done)

    def _slot_free(self) -> bool:
        return self._concurrency is None or len(self._in_flight) < self._concurrency

    def _lingered(self) -> None:
        self._timer = None
        self._linger_over = True
        self._kick()

    def _take(self) -> list[_Waiting[T, R]]:
        """The next batch: waiting items in order, leaving out abandoned ones and those whose key is busy."""
        batch: list[_Waiting[T, R]] = []
        held: list[_Waiting[T, R]] = []
        queue, busy = self._queue, self._busy
        held_max = SCAN_FACTOR * self._max
        while queue and len(batch) < self._max and len(held) < held_max:
            waiting = queue.popleft()
            if self._drop_abandoned and waiting.future.done():
                continue
            if self._exclusive is not None and waiting.key in busy:
                held.append(waiting)
            else:
                batch.append(waiting)
        queue.extendleft(reversed(held))
        return batch

    def _batch_done(self, task: asyncio.Task[bool]) -> None:
        self._in_flight.discard(task)
        if task.cancelled() or task.exception() is not None or task.result():
            self._kick()  # a slot is free, and items held back for this batch's keys can go
        # A batch that found nothing to take (every key busy) kicks nothing: the batches holding the keys will.

    # --- committing ----------------------------------------------------------------------------------------------

    async def _run(self) -> bool:
        """Takes a batch and commits it; whether there was anything to take."""
        batch: list[_Waiting[T, R]] = []
        keys: set[Hashable] = set()
        try:
            await asyncio.sleep(0)  # callers woken in this turn of the loop join the batch
            self._starting = None
            batch = self._take()
            if not batch:
                return False
            self._linger_over = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._exclusive is not None:
                keys = {w.key for w in batch}
                self._busy |= keys
            self._kick()  # what this batch left (other keys' items, more than max_size) may go in another
            if self._drop_abandoned:
                batch = [w for w in batch if not w.future.done()]
            if batch:
                await self._commit_batch(batch)
            return True
        except asyncio.CancelledError:
            if self._starting is asyncio.current_task():
                self._starting = None
            self._stop(batch)
            raise
        finally:
            self._busy -= keys

    async def _commit_batch(self, batch: list[_Waiting[T, R]]) -> None:
        started = time.perf_counter()
        try:
            outcomes = await self._commit([w.item for w in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"a commit returned {len(outcomes)} outcomes for {len(batch)} items")
        except Exception as exc:
            if self._retry_alone and len(batch) > 1:
                for waiting in batch:
                    await self._commit_batch([waiting])
                return
            for waiting in batch:
                _settle(waiting.future, exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(batch), time.perf_counter() - started)
        for waiting, outcome in zip(batch, outcomes, strict=True):
            _settle(waiting.future, outcome)

    def _stop(self, batch: list[_Waiting[T, R]]) -> None:
        """Nobody may wait forever: what was not committed is the callers' to retry."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        left = [*batch, *self._queue]
        self._queue.clear()
        for waiting in left:
            _settle(waiting.future, Stopped())


def _settle(future: asyncio.Future[R], outcome: R | BaseException) -> None:
    if future.done():  # a caller that gave up
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
