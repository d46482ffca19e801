"""Exactly-once order placement with group commit.

Concurrent `place()` calls wait in one queue; a background batcher hands up to `placement_batch_max` of them
to one set-based SQL statement (one transaction), with up to `placement_concurrency` batches in flight on
separate connections. While those run the queue fills, so batches grow with the load and each commit carries
many orders: that is what brings ingress close to the database's commit ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from shared.db import placement as sql
from shared.db.types import Conn
from shared.domain.order_types import OrderDraft, unstorable
from shared.errors import (
    AccountSuspended,
    DependencyDown,
    InsufficientBalance,
    InvalidParameter,
    RequestIdConflict,
    ServiceNotFound,
)
from shared.kit.supervisor import Beat, stall_after, supervise
from shared.observability import metrics
from shared.settings import Settings

log = structlog.get_logger(__name__)

# Waiting longer than this for a connection means the database is in trouble: answer 503, don't queue up.
ACQUIRE_TIMEOUT_S = 5.0
# The database is unreachable (or refusing us): the request is safe to retry, so it becomes a 503.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)
# The batcher reports a round this often while it waits for requests (see shared/kit/supervisor.py).
IDLE_BEAT_S = 5.0
# A connection found dead when taken from the pool is replaced at most this often in all.
_ACQUIRE_ATTEMPTS = 2
# A batch whose connection turns out dead is retried on another connection at most this often in all.
_LOST_CONNECTION_ATTEMPTS = 3
# A request re-run alone is re-run at most this often (a winner that vanishes again and again is a bug).
_SINGLE_ATTEMPTS = 3
# Taking a batch looks at most this many times `placement_batch_max` queued requests.
_SCAN_FACTOR = 4

Result = int | BaseException


@dataclass(frozen=True)
class PlacementRequest:
    account_id: int
    request_id: str
    params_hash: bytes
    draft: OrderDraft
    currency: str
    correlation_id: str


@dataclass(eq=False)
class _Pending:
    request: PlacementRequest
    future: asyncio.Future[int]


class Placer:
    """Places orders exactly once; coalesces concurrent calls into batches (see the module docstring).

    Each batch slot keeps its pool connection between batches (no acquire, reset and release per batch), so
    the placer holds up to `placement_concurrency` of the pool's connections while it runs.
    """

    def __init__(self, pool: asyncpg.Pool, settings: Settings, *, wake_relay: Callable[[], None] | None = None) -> None:
        """`wake_relay`: an outbox relay in this process, woken after every batch instead of by the database.

        With it, the placer's connections skip the outbox insert trigger's NOTIFY: a committing transaction
        that notified holds a database-wide lock through its WAL flush, so notifying batches commit one at a
        time. Relays elsewhere still see the rows at their next poll.
        """
        self._pool = pool
        self._on_placed = wake_relay
        self._batch_max = max(1, settings.placement_batch_max)
        self._slots = asyncio.Semaphore(max(1, settings.placement_concurrency))
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._batcher: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._idle: list[PoolConnectionProxy] = []
        self._closing = False
        self._stopping = asyncio.Event()  # the supervisor's: set by close(), the batcher drains the queue first
        self._busy_accounts: set[int] = set()
        self._stall_after_s = stall_after(settings.loop_stall_s, IDLE_BEAT_S)

    async def start(self) -> None:
        self._closing = False
        self._stopping.clear()
        self._batcher = supervise(
            "placement-batcher", self._run, stopping=self._stopping, stall_after_s=self._stall_after_s
        )

    async def close(self) -> None:
        """Place everything already queued, wait for the batches in flight, then stop."""
        self._closing = True
        self._stopping.set()
        self._wakeup.set()
        if self._batcher is not None:
            await self._batcher
            self._batcher = None
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        while self._idle:
            conn = self._idle.pop()
            if _usable(conn):
                await self._pool.release(conn)
            else:
                await self._discard(conn)

    async def place(self, request: PlacementRequest) -> int:
        """The order id (new, or the original for a replay with the same params_hash).

        Raises InsufficientBalance, RequestIdConflict (same request_id, other params), AccountSuspended;
        InvalidParameter for an order its table could not hold (refused before it joins a batch, so that it
        cannot fail the others); DependencyDown when the database is unreachable (or the placer is shutting down).
        """
        problem = unstorable(request.draft, request.request_id)
        if problem is not None:
            raise InvalidParameter(problem)
        if self._closing or self._batcher is None:
            raise DependencyDown()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(request, future))
        self._wakeup.set()
        return await future

    # --- batching --------------------------------------------------------------------------------------

    async def _run(self, beat: Beat) -> None:
        while True:
            beat()
            # Take a batch only once a slot is free: meanwhile the queue grows into the next batch.
            await self._slots.acquire()
            try:
                while not (batch := self._take()):
                    if self._closing and not self._queue:
                        self._slots.release()
                        return
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), IDLE_BEAT_S)
                    beat()  # idle, and able to take the next request at once
            except BaseException:
                self._slots.release()  # restarted by the supervisor: the slot must not leak
                raise
            accounts = {p.request.account_id for p in batch}
            self._busy_accounts |= accounts
            task = asyncio.create_task(self._execute(batch, accounts))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    def _take(self) -> list[_Pending]:
        """The next batch: queued requests, in order, of accounts that no batch in flight holds.

        Two batches sharing an account would wait for each other's row lock and commit one after the other,
        each with its own WAL flush; held back instead, those requests ride in the next batch of the account
        (one account under load: one batch at a time, as big as the queue).
        """
        batch: list[_Pending] = []
        held: list[_Pending] = []
        busy = self._busy_accounts
        queue = self._queue
        scan = _SCAN_FACTOR * self._batch_max  # bounded: a long queue of one busy account is not rescanned whole
        while queue and len(batch) < self._batch_max and scan > 0:
            scan -= 1
            pending = queue.popleft()
            if pending.future.done():  # a caller that gave up before its turn gets nothing placed
                continue
            if pending.request.account_id in busy:
                held.append(pending)
            else:
                batch.append(pending)
        queue.extendleft(reversed(held))
        return batch

    async def _execute(self, batch: list[_Pending], accounts: set[int]) -> None:
        try:
            await self._place_on_a_connection(batch)
        except Exception as exc:  # never leave a caller waiting, whatever broke
            log.exception("placement_batch_crashed", size=len(batch))
            for pending in batch:
                _deliver(pending, exc)
        finally:
            self._busy_accounts -= accounts
            self._slots.release()
            self._wakeup.set()  # requests held back for these accounts can go now
            if self._on_placed is not None:
                self._on_placed()

    async def _place_on_a_connection(self, batch: list[_Pending]) -> None:
        for attempt in range(1, _LOST_CONNECTION_ATTEMPTS + 1):
            waiting = [p for p in batch if not p.future.done()]
            if not waiting:
                return
            try:
                conn = self._idle.pop() if self._idle else await self._acquire()
                if not _usable(conn):  # lost while idle (e.g. a database restart)
                    await self._discard(conn)
                    conn = await self._acquire()
            except CONNECTION_ERRORS as exc:
                log.warning("placement_database_down", error=repr(exc), size=len(waiting))
                _deliver_all(waiting, DependencyDown)
                return
            try:
                try:
                    await self._place_pending(conn, waiting)
                except (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError) as exc:
                    # A connection whose server went away while it was idle can fail this way (e.g. "another
                    # operation is in progress") before asyncpg notices the loss: it is broken either way.
                    if _usable(conn) and isinstance(exc, asyncpg.InterfaceError):
                        raise
                    raise ConnectionError("the database connection was lost") from exc
            except CONNECTION_ERRORS as exc:
                await self._discard(conn)
                # Kept or pooled connections may have died while idle (a database restart) before asyncpg
                # noticed: try again on another. While the database is really down, acquiring fails at once.
                # Re-running is safe: what a lost statement committed comes back as the original orders.
                if attempt < _LOST_CONNECTION_ATTEMPTS:
                    continue
                log.warning("placement_database_down", error=repr(exc), size=len(waiting))
                _deliver_all([p for p in waiting if not p.future.done()], DependencyDown)
                return
            except BaseException:
                await self._discard(conn)
                raise
            self._idle.append(conn)
            return

    async def _acquire(self) -> PoolConnectionProxy:
        """A pooled connection of this batch slot alone (set up to skip the outbox NOTIFY when a relay is next
        door). One the server dropped while it idled in the pool is replaced once; ConnectionError after that."""
        for attempt in range(1, _ACQUIRE_ATTEMPTS + 1):
            conn: PoolConnectionProxy = await self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S)
            if self._on_placed is None:
                return conn
            try:
                # Session-wide until the pool resets the connection (RESET ALL) when the placer gives it back.
                await conn.execute(sql.SKIP_OUTBOX_NOTIFY)
            except (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError) as exc:
                # A database restart terminates idle pooled connections: asyncpg may hand one out after reading
                # the server's FATAL but before seeing the socket close ("cannot switch to state 15; another
                # operation (2) is in progress": 2 is the state of consuming that error). It is broken, not busy.
                await self._discard(conn)
                if attempt == _ACQUIRE_ATTEMPTS:
                    raise ConnectionError("the database connection was lost") from exc
            except BaseException:
                await self._discard(conn)
                raise
            else:
                return conn
        raise AssertionError("unreachable")

    async def _discard(self, conn: PoolConnectionProxy) -> None:
        # Terminating hands the connection back to the pool (which replaces it); a detached proxy is back already.
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()
        with contextlib.suppress(Exception):
            await self._pool.release(conn)

    async def _place_pending(self, conn: Conn, batch: list[_Pending]) -> None:
        # Duplicates of one (account, request_id) in a batch share the outcome of the first; one with other
        # parameters is settled after it (it then meets the original: 409, or is placed if the first failed).
        firsts: dict[tuple[int, str], _Pending] = {}
        followers: list[tuple[_Pending, _Pending]] = []
        later: list[_Pending] = []
        for pending in batch:
            req = pending.request
            first = firsts.setdefault((req.account_id, req.request_id), pending)
            if first is pending:
                continue
            if first.request.params_hash == req.params_hash:
                followers.append((pending, first))
            else:
                later.append(pending)
        leaders = list(firsts.values())
        results = await self._place_all(conn, [p.request for p in leaders])
        outcome = {}
        for pending, result in zip(leaders, results, strict=True):
            outcome[id(pending)] = result
            _deliver(pending, result)
        for pending, first in followers:
            _deliver(pending, outcome[id(first)])
        for pending in later:
            _deliver(pending, (await self._place_all(conn, [pending.request]))[0])

    # --- the database work -----------------------------------------------------------------------------

    async def _place_all(self, conn: Conn, requests: Sequence[PlacementRequest], attempt: int = 1) -> list[Result]:
        """Outcome of each request (distinct (account, request_id) pairs): an order id or the error to raise.

        Connection errors propagate: the caller answers them (503) for the whole batch.
        """
        single = len(requests) == 1
        started = time.perf_counter()
        try:
            rows = await sql.place_batch(conn, [_new_order(r) for r in requests])
        except CONNECTION_ERRORS:
            raise
        except asyncpg.PostgresError as exc:
            if single:
                return [_single_failure(exc)]
            # One bad order must not fail the others: place them one by one.
            log.warning("placement_batch_failed", error=repr(exc), size=len(requests))
            return [(await self._place_all(conn, [r]))[0] for r in requests]
        metrics.PLACEMENT_BATCH_DURATION.observe(time.perf_counter() - started)
        metrics.PLACEMENT_BATCH_SIZE.observe(len(requests))

        results: list[Result | None] = [None] * len(requests)
        refused: list[int] = []
        skipped: list[int] = []
        balance_left: dict[int, Decimal] = {}
        for i, (req, row) in enumerate(zip(requests, rows, strict=True)):
            match row.outcome:
                case sql.Outcome.PLACED:
                    results[i] = row.order_id
                case sql.Outcome.EXISTING:
                    results[i] = _original(row.order_id, row.params_hash, req.params_hash)
                case sql.Outcome.SUSPENDED:
                    results[i] = AccountSuspended()
                case sql.Outcome.REFUSED:
                    if single:
                        results[i] = InsufficientBalance()
                    else:
                        refused.append(i)
                        if row.balance_left is not None:
                            balance_left[req.account_id] = row.balance_left
                case sql.Outcome.SKIPPED:
                    skipped.append(i)

        rerun: list[int] = []
        if skipped:
            # Another batch committed these request_ids after our snapshot: its order is the original.
            found = await sql.find_orders(conn, [(requests[i].account_id, requests[i].request_id) for i in skipped])
            for i, winner in zip(skipped, found, strict=True):
                if winner is None:
                    rerun.append(i)
                else:
                    results[i] = _original(winner[0], winner[1], requests[i].params_hash)

        # The running sum is greedy (balance 10: 8 taken, then 5 and 1 both refused). Re-run alone, in batch
        # order, each refused order that still fits into what its account has left; the rest truly do not fit.
        for i in refused:
            req = requests[i]
            left = balance_left.get(req.account_id)
            if left is not None and req.draft.charge > left:
                results[i] = InsufficientBalance()
            else:
                rerun.append(i)
                if left is not None:
                    balance_left[req.account_id] = left - req.draft.charge

        for i in sorted(rerun):
            if single and attempt >= _SINGLE_ATTEMPTS:
                results[i] = RuntimeError(f"placement did not settle after {attempt} attempts")
            else:
                results[i] = (await self._place_all(conn, [requests[i]], attempt + 1 if single else 1))[0]
        return [r if r is not None else RuntimeError("placement left a request unsettled") for r in results]


def _original(order_id: int | None, placed_hash: bytes | None, params_hash: bytes) -> int | RequestIdConflict | None:
    """The answer to a request_id placed before: its order (an idempotent replay), or a 409 for other params."""
    if placed_hash != params_hash:
        return RequestIdConflict()
    metrics.API_IDEMPOTENT_REPLAYS.inc()
    return order_id


async def existing_order(conn: Conn, *, account_id: int, request_id: str, params_hash: bytes) -> int | None:
    """For the api's validation-failure path: the original order id if this request_id was already placed with
    the same params_hash; raises RequestIdConflict if placed with different params; None if never placed."""
    try:
        found = await sql.find_order(conn, account_id=account_id, request_id=request_id)
    except CONNECTION_ERRORS as exc:
        raise DependencyDown() from exc
    if found is None:
        return None
    if found[1] != params_hash:
        raise RequestIdConflict()
    metrics.API_IDEMPOTENT_REPLAYS.inc()
    return found[0]


def _new_order(req: PlacementRequest) -> sql.NewOrder:
    d = req.draft
    return sql.NewOrder(
        account_id=req.account_id,
        request_id=req.request_id,
        params_hash=req.params_hash,
        service_id=d.service_id,
        type=d.type,
        link=d.link,
        quantity=d.quantity,
        params=d.params,
        rate=d.rate,
        charge=d.charge,
        currency=req.currency,
        correlation_id=req.correlation_id,
    )


def _single_failure(exc: asyncpg.PostgresError) -> BaseException:
    # The orders table's only foreign key the statement can break is the service: it was deleted meanwhile.
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return ServiceNotFound()
    log.error("placement_failed", error=repr(exc))
    return exc


def _usable(conn: PoolConnectionProxy) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # the proxy was detached: its connection went back to the pool on loss
        return False


def _deliver_all(batch: list[_Pending], error: type[BaseException]) -> None:
    for pending in batch:
        _deliver(pending, error())


def _deliver(pending: _Pending, result: Result) -> None:
    if pending.future.done():  # the caller gave up (e.g. the client disconnected)
        return
    if isinstance(result, BaseException):
        pending.future.set_exception(result)
    else:
        pending.future.set_result(result)
