"""Acks of one channel's handled deliveries, in as few frames as possible.

Every ack is a frame for us to write and, on a quorum queue, a settlement for the broker to write to its log.
Handlers that finish in the same event-loop iteration (a group commit's batch, say) are acked together: one
`basic.ack` with `multiple=True` for the run of consecutive delivery tags that are all settled. A delivery is
never acked before its handler returned, and a slow handler never holds the others' acks back (which would
stall the consumer at its prefetch): a handled delivery that is not part of such a run is acked on its own.

The bookkeeping (`AckLedger`) relies on one rule of AMQP 0-9-1: a channel numbers its deliveries 1, 2, 3, …
It does not rely on the order in which handlers learn of their deliveries.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog
from aiormq.abc import AbstractChannel

from shared.logging import context_without_message

log = structlog.get_logger("panelflow.consumer")


@dataclass
class AckPlan:
    """The frames one flush sends: a `multiple` ack up to `through` (when set), then single acks."""

    through: int | None = None
    singles: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.through is not None or bool(self.singles)


class AckLedger:
    """Pure bookkeeping of one channel's delivery tags: which are handled and not yet acked, which are settled
    (acked, nacked or rejected), and from that, the acks to send."""

    def __init__(self) -> None:
        self._through = 0  # every tag up to here is settled
        self._pending: set[int] = set()  # handled, ack not yet sent
        self._settled: set[int] = set()  # settled above `_through`

    def handled(self, tag: int) -> None:
        if tag > self._through and tag not in self._settled:
            self._pending.add(tag)

    def settled(self, tag: int) -> None:
        """`tag` was settled by a frame of its own (a nack or a reject)."""
        self._pending.discard(tag)
        if tag > self._through:
            self._settled.add(tag)

    def plan(self) -> AckPlan:
        """The acks for everything handled so far; from now on they count as sent."""
        plan = AckPlan()
        if not self._pending:
            return plan
        # Extend the settled run; its highest handled tag is acked with `multiple`, which acks nothing else
        # because every tag below it is settled (the broker no longer holds the acked, nacked or rejected ones).
        tag = self._through + 1
        while True:
            if tag in self._pending:
                self._pending.discard(tag)
                plan.through = tag
            elif tag in self._settled:
                self._settled.discard(tag)
            else:
                break
            tag += 1
        self._through = tag - 1
        plan.singles = sorted(self._pending)
        self._settled.update(plan.singles)
        self._pending.clear()
        return plan


class AckBatcher:
    """Sends a channel's acks: `handled(tag)` after the handler returned; the acks go out once the handlers that
    are ready to finish in this loop iteration have finished. `close()` sends what is left."""

    def __init__(self, channel: AbstractChannel, queue: str) -> None:
        self._channel = channel
        self._queue = queue
        self._ledger = AckLedger()
        self._flush: asyncio.Task[None] | None = None

    def handled(self, tag: int | None) -> None:
        if tag is None:  # consumed without acks: nothing to send
            return
        self._ledger.handled(tag)
        if self._flush is None:
            # A task starts after the callbacks already scheduled: the handlers woken with this one. It acks for
            # many messages, so it carries none of this one's log fields.
            self._flush = asyncio.get_running_loop().create_task(self._send(), context=context_without_message())

    def settled(self, tag: int | None) -> None:
        if tag is not None:
            self._ledger.settled(tag)

    async def close(self) -> None:
        while self._flush is not None:
            await asyncio.shield(self._flush)

    async def _send(self) -> None:
        try:
            while plan := self._ledger.plan():
                try:
                    if plan.through is not None:
                        await self._channel.basic_ack(plan.through, multiple=True)
                    for tag in plan.singles:
                        await self._channel.basic_ack(tag)
                except Exception as exc:  # channel gone: the broker redelivers what was not acked
                    log.warning("message_settle_failed", queue=self._queue, action="ack",
                                error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                    return
        finally:
            self._flush = None
