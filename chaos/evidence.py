"""What the audit reads once the run is quiet: the database's orders, ledger and status events, the simulator's
counts of upstream calls and orders per link, and whether the stack has settled."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from shared.db.accounts import LedgerMismatch, ledger_mismatches
from shared.domain.events import SUBSCRIBER_EVENTS
from shared.messaging import topology
from shared.messaging.connection import connect as connect_amqp
from shared.settings import Settings

IN_FLIGHT = ("pending", "submitting", "in_progress", "processing")


@dataclass(frozen=True)
class DbOrder:
    id: int
    account_id: int
    request_id: str
    link: str
    status: str
    quantity: int
    charge: Decimal
    refunded: Decimal
    remains: int | None
    provider_order_id: str | None
    last_error: str | None


@dataclass(frozen=True)
class LedgerRow:
    order_id: int
    kind: str
    amount: Decimal


@dataclass(frozen=True)
class StatusEvent:
    id: str
    type: str
    account_id: int | None
    order_id: int | None
    payload: dict[str, Any]
    published: bool


@dataclass
class Evidence:
    orders: list[DbOrder]
    ledger: list[LedgerRow]
    stray_ledger: int  # rows without an order that are not top-ups
    mismatches: list[LedgerMismatch]
    events: list[StatusEvent]
    unpublished_outbox: int
    deliveries: dict[str, int]  # webhook_deliveries by status
    adds_per_link: dict[str, int]  # `add` calls the simulator received, per link (= per our order)
    orders_per_link: dict[str, int]  # orders the simulator created, per link


async def unsettled(conn: asyncpg.Connection) -> dict[str, int]:
    """What still moves: in-flight orders, unfinished refills, unpublished outbox rows, pending deliveries."""
    row = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM orders WHERE status = ANY($1::text[])) AS orders,
               (SELECT count(*) FROM refills WHERE status IN ('pending', 'submitting', 'in_progress')) AS refills,
               (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS outbox,
               (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS deliveries
        """,
        list(IN_FLIGHT),
    )
    assert row is not None
    return {k: int(v) for k, v in row.items() if v}


async def gather(conn: asyncpg.Connection, sim_stats: dict[str, Any]) -> Evidence:
    orders = [
        DbOrder(
            r["id"],
            r["account_id"],
            r["request_id"],
            r["link"] or "",
            r["status"],
            r["quantity"],
            r["charge"],
            r["refunded"],
            r["remains"],
            r["provider_order_id"],
            r["last_error"],
        )
        for r in await conn.fetch(
            "SELECT id, account_id, request_id, link, status, quantity, charge, refunded, remains, provider_order_id,"
            " last_error FROM orders ORDER BY id"
        )
    ]
    ledger = [
        LedgerRow(r["order_id"], r["kind"], r["amount"])
        for r in await conn.fetch("SELECT order_id, kind, amount FROM ledger WHERE order_id IS NOT NULL ORDER BY id")
    ]
    stray = await conn.fetchval("SELECT count(*) FROM ledger WHERE order_id IS NULL AND kind <> 'topup'")
    events = []
    for r in await conn.fetch(
        "SELECT id, event_type, payload, published_at IS NOT NULL AS published FROM outbox"
        " WHERE event_type = ANY($1::text[]) ORDER BY created_at",
        [str(e) for e in SUBSCRIBER_EVENTS],
    ):
        payload = r["payload"] if isinstance(r["payload"], dict) else json.loads(r["payload"])
        order = payload.get("order")
        events.append(
            StatusEvent(
                str(r["id"]),
                r["event_type"],
                payload.get("account_id"),
                int(order) if order is not None else None,
                payload,
                r["published"],
            )
        )
    unpublished = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    deliveries = {
        r["status"]: r["n"]
        for r in await conn.fetch("SELECT status, count(*) AS n FROM webhook_deliveries GROUP BY status")
    }
    return Evidence(
        orders=orders,
        ledger=ledger,
        stray_ledger=int(stray),
        mismatches=await ledger_mismatches(conn),
        events=events,
        unpublished_outbox=int(unpublished),
        deliveries=deliveries,
        adds_per_link={str(k): int(v) for k, v in sim_stats.get("adds_per_link", {}).items()},
        orders_per_link={str(k): int(v) for k, v in sim_stats.get("orders_per_link", {}).items()},
    )


async def dead_lettered(settings: Settings) -> dict[str, int]:
    """Messages in each dead-letter queue: events a consumer gave up on, kept for an operator's replay."""
    connection = await connect_amqp(settings.amqp_url, timeout=10)
    try:
        channel = await connection.channel()
        counts = {}
        for spec in topology.QUEUES:
            name = topology.dead_letter_queue_name(settings, spec.name)
            queue = await channel.declare_queue(name, passive=True)
            count = queue.declaration_result.message_count or 0
            if count:
                counts[spec.name] = int(count)
        return counts
    finally:
        await connection.close()
