"""`panelflow orders parked|resolve`: the operator's view of parked orders and their settlement.

A parked order ('unknown') was sent to a provider that does not honour request_id and no readable answer came
back: the upstream may or may not have it, so it is never resubmitted automatically. Its `error` says why
(`outcome unknown: timeout`, `… http 502`, `worker stopped during the upstream call …`); `request_id` is what we
sent the provider. Check the provider's panel, then settle it:
`--provider-order PID` (it is there: attach it), `--refund` (it is not: give the money back) or `--resubmit`
(it is not, and it should be bought after all).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import asyncpg

from shared.cli import lookups
from shared.cli.base import CommandError, Subparsers, command, database, database_error, group, positive_int
from shared.db.orders import reads as parked_sql
from shared.db.pool import create_pool
from shared.domain.lifecycle import upstream_request_id
from shared.domain.money import format_money
from shared.errors import NotEligible
from shared.settings import Settings
from shared.worker import parked

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def register(commands: Subparsers) -> None:
    sub = group(commands, "orders", "look orders up; settle those the worker could not settle on its own")
    lookups.add_order_lookups(sub)
    listing = command(sub, "parked", "list parked orders (upstream outcome unknown)", _parked)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--limit", type=positive_int, default=1000)
    resolve = command(sub, "resolve", "settle one parked order", _resolve)
    resolve.add_argument("--order", type=positive_int, required=True, help="our order id")
    how = resolve.add_mutually_exclusive_group(required=True)
    how.add_argument("--provider-order", metavar="PID", help="the upstream has it under this id: attach and follow")
    how.add_argument("--refund", action="store_true", help="the upstream does not have it: cancel, refund all")
    how.add_argument("--resubmit", action="store_true", help="the upstream does not have it: buy it again")


async def _parked(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        orders = await parked_sql.list_parked(conn, limit=args.limit)
    for o in orders:
        request_id = upstream_request_id(o.id, (o.created_at - _EPOCH) // timedelta(microseconds=1))
        if args.json:
            print(
                json.dumps(
                    {
                        "order": o.id, "account": o.account_id, "service": o.service_id, "provider": o.provider_id,
                        "provider_service": o.provider_service_id, "link": o.link, "quantity": o.quantity,
                        "charge": format_money(o.charge), "currency": o.currency, "attempts": o.submit_attempts,
                        "error": o.last_error, "request_id": request_id, "created_at": o.created_at.isoformat(),
                        "parked_at": o.updated_at.isoformat(),
                    }
                )
            )  # fmt: skip
        else:
            print(
                f"order {o.id}  account {o.account_id}  provider {o.provider_id} service {o.provider_service_id}  "
                f"qty {o.quantity}  charge {format_money(o.charge)} {o.currency}  parked {o.updated_at:%Y-%m-%d %H:%M}"
                f"  link {o.link}  request_id {request_id}  error: {o.last_error}"
            )
    if not args.json:
        print(f"{len(orders)} parked order(s)")
    return 0


async def _resolve(args: argparse.Namespace, settings: Settings) -> int:
    try:
        pool = await create_pool(settings.model_copy(update={"db_pool_min": 1, "db_pool_max": 1}))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise database_error(settings, exc) from exc
    try:
        if args.provider_order is not None:
            pid = args.provider_order.strip()
            if not pid:
                raise CommandError("--provider-order must not be empty")
            result = await parked.attach_provider_order(pool, settings, order_id=args.order, provider_order_id=pid)
        elif args.refund:
            result = await parked.refund(pool, order_id=args.order)
        else:
            result = await parked.resubmit(pool, order_id=args.order)
    except NotEligible as exc:
        raise CommandError(exc.message) from exc
    finally:
        await pool.close()
    print(f"order {result.order_id}: {result.action} -> {result.status}")
    return 0
