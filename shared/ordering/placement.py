"""Exactly-once order placement with group commit.

Concurrent `place()` calls wait in one group commit (`shared.kit.group_commit`): up to `placement_batch_max`
of them go to one set-based SQL statement (one transaction, `shared.ordering.outcomes`), with up to
`placement_concurrency` batches in flight on connections kept between batches (`shared.ordering.kept_connections`).
While those run the queue fills, so batches grow with the load and each commit carries many orders: that is
what brings ingress close to the database's commit ceiling. Two batches in flight never share an account: they
would wait for each other's row lock and commit one after the other, each with its own WAL flush; held back
instead, those requests ride in the next batch of the account (one account under load: one batch at a time, as
big as the queue). A caller that gives up before its batch starts (e.g. the client disconnected) gets nothing
placed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import asyncpg
import structlog

from shared.domain.order_types import unstorable
from shared.errors import DependencyDown, InvalidParameter
from shared.kit.group_commit import GroupCommit
from shared.observability import metrics
from shared.ordering.kept_connections import KeptConnections
from shared.ordering.outcomes import PlacementRequest, Result, place_requests
from shared.settings import Settings

log = structlog.get_logger(__name__)


class Placer:
    """Places orders exactly once; coalesces concurrent calls into batches (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, *, wake_relay: Callable[[], None] | None = None) -> None:
        """`wake_relay`: an outbox relay in this process, woken after every batch instead of by the database.

        With it, the placer's connections skip the outbox insert trigger's NOTIFY: a committing transaction
        that notified holds a database-wide lock through its WAL flush, so notifying batches commit one at a
        time. Relays elsewhere still see the rows at their next poll.
        """
        self._on_placed = wake_relay
        self._connections = KeptConnections(pool, skip_outbox_notify=wake_relay is not None)
        self._batch_max = settings.placement_batch_max
        self._concurrency = settings.placement_concurrency
        self._group: GroupCommit[PlacementRequest, int] | None = None

    async def start(self) -> None:
        self._group = GroupCommit(
            self._commit,
            max_size=self._batch_max,
            concurrency=max(1, self._concurrency),
            exclusive=_account,
            drop_abandoned=True,
            on_batch=_observe_batch,
        )

    async def close(self) -> None:
        """Place everything already queued, wait for the batches in flight, then stop."""
        group, self._group = self._group, None  # from now on place() answers DependencyDown
        if group is not None:
            await group.close()
        await self._connections.close()

    async def place(self, request: PlacementRequest) -> int:
        """The order id (new, or the original for a replay with the same params_hash).

        Raises InsufficientBalance, RequestIdConflict (same request_id, other params), AccountSuspended;
        InvalidParameter for an order its table could not hold (refused before it joins a batch, so that it
        cannot fail the others); DependencyDown when the database is unreachable (or the placer is shutting down).
        """
        problem = unstorable(request.draft, request.request_id)
        if problem is not None:
            raise InvalidParameter(problem)
        group = self._group
        if group is None:
            raise DependencyDown()
        return await group.submit(request)

    async def _commit(self, requests: list[PlacementRequest]) -> Sequence[Result]:
        try:
            return await self._connections.run(lambda conn: place_requests(conn, requests), size=len(requests))
        except DependencyDown:
            return [DependencyDown() for _ in requests]
        except Exception:  # every caller of the batch gets it: nobody is left waiting, whatever broke
            log.exception("placement_batch_crashed", size=len(requests))
            raise
        finally:
            if self._on_placed is not None:
                self._on_placed()


def _account(request: PlacementRequest) -> int:
    return request.account_id


def _observe_batch(size: int, seconds: float) -> None:
    metrics.PLACEMENT_BATCH_SIZE.observe(size)
    metrics.PLACEMENT_BATCH_DURATION.observe(seconds)
