"""The outbox relay: publishes committed outbox rows to RabbitMQ, at least once, then marks them published.

One batch = one transaction: claim the oldest unpublished rows (`FOR UPDATE SKIP LOCKED`, so relays in
several processes share the table), publish them all concurrently as persistent `mandatory` messages with
publisher confirms, mark the confirmed ones published and count a failure on the others, commit. A crash
between the confirms and the commit republishes the batch: consumers dedupe on the event id.

Woken by `LISTEN panelflow_outbox` on a dedicated connection (the insert trigger notifies), polling every
`relay_poll_s` as a backstop. Broker or database down: rows wait in the outbox, the relay retries with
backoff, reconnects, and carries on. Published rows are deleted later (`shared/messaging/outbox_retention.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiormq
import asyncpg
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection
from pamqp.commands import Basic

from shared.db import outbox
from shared.db.pool import HeldConnection, connect
from shared.failpoints import Failpoints
from shared.kit.supervisor import Beat, stall_after, supervise
from shared.messaging import topology
from shared.messaging.backoff import Backoff
from shared.messaging.connection import connect as connect_amqp
from shared.messaging.envelope import publish_properties
from shared.messaging.outbox_retention import OutboxRetention
from shared.observability import metrics
from shared.settings import Settings

NOTIFY_CHANNEL = "panelflow_outbox"
# How often the idle LISTEN connection is probed: a connection lost without a FIN is noticed this late.
LISTEN_KEEPALIVE_S = 10.0
# Opening the LISTEN connection gives up after this long (a server that accepts but never answers).
CONNECT_TIMEOUT_S = 10.0
# A row the broker refused is kept out of the batches for 0.5 s, doubling per failure, at most a minute.
COOLDOWN_BASE_S = 0.5
COOLDOWN_MAX_S = 60.0

log = structlog.get_logger("panelflow.relay")


@dataclass(frozen=True)
class _Target:
    """Where the relay publishes: the aiormq channel of its aio-pika channel, and the events exchange.

    aio-pika's message and exchange layers cost about a quarter of the CPU of a publish; the relay publishes
    every event the system emits, so it builds the frames' properties itself (`publish_properties`).
    """

    channel: aiormq.Channel
    exchange: str


class NotConfirmed(Exception):
    """The broker did not positively confirm a publish (nack, or an unexpected answer)."""


class OutboxRelay:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, failpoints: Failpoints | None = None) -> None:
        self.settings = settings
        self.pool = pool
        # One batch at a time: the claim connection is kept between batches (no reset round trip per batch).
        self._db = HeldConnection(pool)
        self.failpoints = failpoints if failpoints is not None else Failpoints(settings.failpoints)
        self.published_total = 0
        self.failed_total = 0
        # Set while the LISTEN connection is up (NOTIFY wakes the relay); polling alone otherwise.
        self.listening = asyncio.Event()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._target: _Target | None = None
        self._cooldown: dict[uuid.UUID, float] = {}
        self.retention = OutboxRetention(settings, pool)

    async def start(self) -> None:
        """Start the publishing loop, the LISTEN loop and the retention purge as background tasks; returns at
        once."""
        self._stopping.clear()
        floor = self.settings.loop_stall_s
        self._tasks = [
            supervise(
                "outbox-relay",
                self._publish_loop,
                stopping=self._stopping,
                stall_after_s=stall_after(
                    floor, max(self.settings.relay_poll_s, self.settings.relay_publish_timeout_s)
                ),
            ),
            supervise(
                "outbox-relay-listen",
                self._listen_loop,
                stopping=self._stopping,
                stall_after_s=stall_after(floor, LISTEN_KEEPALIVE_S),
            ),
        ]
        await self.retention.start()
        log.info("relay_started", batch=self.settings.relay_batch, poll_s=self.settings.relay_poll_s)

    async def stop(self) -> None:
        """Finish the batch in flight (unmarked rows are simply published again later), then disconnect."""
        self._stopping.set()
        self._wake.set()
        await self.retention.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.settings.relay_publish_timeout_s + 5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        await self._disconnect()
        await self._db.close()
        log.info("relay_stopped", published=self.published_total, failed=self.failed_total)

    def wake(self) -> None:
        """Publish now rather than at the next poll (what a NOTIFY does)."""
        self._wake.set()

    async def publish_batch(self) -> tuple[int, int]:
        """Claim, publish and mark one batch. Returns (rows claimed, rows that failed to publish)."""
        target = await self._ensure_target()
        async with self._db.use() as conn, conn.transaction():
            rows = await outbox.claim_unpublished(conn, self.settings.relay_batch, self._cooling_down())
            if not rows:
                return 0, 0
            results = await asyncio.gather(*(self._publish(target, row) for row in rows), return_exceptions=True)
            published = [row.id for row, result in zip(rows, results, strict=True) if result is None]
            failed = [(row, result) for row, result in zip(rows, results, strict=True) if result is not None]
            # Crash tests kill the process here: confirmed by the broker, not yet marked in the database.
            self.failpoints.hit("relay.after_publish")
            await outbox.mark_published(conn, published)
            await outbox.mark_failed(conn, [(row.id, _describe(error)) for row, error in failed])
        self.published_total += len(published)
        self.failed_total += len(failed)
        metrics.OUTBOX_PUBLISHED.inc(len(published))
        metrics.OUTBOX_PUBLISH_FAILURES.inc(len(failed))
        if published:
            log.info("outbox_published", count=len(published))
        if failed:
            log.warning("outbox_publish_failed", count=len(failed), first_error=_describe(failed[0][1]))
            if self._connected():
                # The broker refused these messages themselves (unroutable, nacked, unconfirmed in time): keep
                # them out of the next batches for a while instead of retrying them in a tight loop.
                now = time.monotonic()
                for row, _ in failed:
                    self._cooldown[row.id] = now + min(COOLDOWN_MAX_S, COOLDOWN_BASE_S * 2 ** min(row.attempts, 10))
        return len(rows), len(failed)

    def _cooling_down(self) -> list[uuid.UUID]:
        now = time.monotonic()
        for row_id in [row_id for row_id, until in self._cooldown.items() if until <= now]:
            del self._cooldown[row_id]
        return list(self._cooldown)

    async def _publish(self, target: _Target, row: outbox.OutboxRow) -> None:
        properties = publish_properties(event_id=row.id, event_type=row.event_type, correlation_id=row.correlation_id)
        # mandatory + on_return_raises (set on the channel): an unroutable message raises PublishError.
        confirmation = await target.channel.basic_publish(
            row.payload.encode(),
            exchange=target.exchange,
            routing_key=row.event_type,
            properties=properties,
            mandatory=True,
            timeout=self.settings.relay_publish_timeout_s,
            # No socket drain per message (the batch is bounded); the broker's confirm is still awaited.
            wait=False,
        )
        if not isinstance(confirmation, Basic.Ack):
            raise NotConfirmed(f"broker answered {confirmation!r}")

    async def _publish_loop(self, beat: Beat) -> None:
        backoff = Backoff(self.settings.amqp_reconnect_max_s)
        while not self._stopping.is_set():
            self._wake.clear()
            beat()
            try:
                claimed, failed = await self.publish_batch()
            except Exception as exc:  # broker or database unreachable: the rows wait in the outbox
                delay = backoff.next_delay()
                log.warning("relay_error", error=_describe(exc), retry_in_s=round(delay, 2))
                await self._drop_broken_connection()
                await self._sleep(delay)
                continue
            if failed and not self._connected():
                await self._disconnect()
                await self._sleep(backoff.next_delay())
                continue
            backoff.reset()
            if claimed < self.settings.relay_batch:
                await self._wait_for_work()

    async def _wait_for_work(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.settings.relay_poll_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _ensure_target(self) -> _Target:
        if self._target is not None and self._connected():
            return self._target
        await self._disconnect()
        connection = await connect_amqp(
            self.settings.amqp_url, timeout=self.settings.relay_publish_timeout_s, name="panelflow-relay"
        )
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await topology.declare(channel, self.settings)
            # Publish on the channel underneath aio-pika's (same channel, confirms and returns): see _Target.
            underlay = await channel.get_underlay_channel()
            if not isinstance(underlay, aiormq.Channel):
                raise TypeError(f"unexpected channel type {type(underlay).__name__}")
            target = _Target(underlay, exchange.name)
        except BaseException:
            await connection.close()
            raise
        self._connection, self._channel, self._target = connection, channel, target
        log.info("relay_connected")
        return target

    def _connected(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def _drop_broken_connection(self) -> None:
        if self._connection is not None and not self._connected():
            await self._disconnect()

    async def _disconnect(self) -> None:
        connection, self._connection, self._channel, self._target = self._connection, None, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)

    async def _listen_loop(self, beat: Beat) -> None:
        backoff = Backoff(self.settings.amqp_reconnect_max_s)
        while not self._stopping.is_set():
            beat()
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncio.wait_for(connect(self.settings), CONNECT_TIMEOUT_S)
                await self._listen_on(conn, backoff, beat)
            except Exception as exc:  # database down: polling carries on meanwhile, retry the LISTEN later
                delay = backoff.next_delay()
                log.warning("relay_listen_error", error=_describe(exc), retry_in_s=round(delay, 2))
                await self._sleep(delay)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)

    async def _listen_on(self, conn: asyncpg.Connection, backoff: Backoff, beat: Beat) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
        backoff.reset()
        self._wake.set()  # rows committed while nobody listened
        self.listening.set()
        log.info("relay_listening")
        try:
            await self._hold_listen_connection(conn, lost, beat)
        finally:
            self.listening.clear()
        if not self._stopping.is_set():
            log.warning("relay_listen_lost")

    async def _hold_listen_connection(self, conn: asyncpg.Connection, lost: asyncio.Event, beat: Beat) -> None:
        while not self._stopping.is_set() and not lost.is_set():
            beat()
            stopping = asyncio.ensure_future(self._stopping.wait())
            gone = asyncio.ensure_future(lost.wait())
            try:
                done, _ = await asyncio.wait(
                    {stopping, gone}, timeout=LISTEN_KEEPALIVE_S, return_when="FIRST_COMPLETED"
                )
            finally:
                stopping.cancel()
                gone.cancel()
            if not done:
                await conn.execute("SELECT 1", timeout=5)

    def _on_notify(self, *_args: Any) -> None:
        self._wake.set()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
