"""`list` and `show` for accounts, services and orders: aligned columns, or `--json` (one object per line)."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from shared.cli.base import CommandError, Parser, database, positive_int
from shared.cli.output import emit, emit_one
from shared.db import accounts, catalog, keys
from shared.db import providers as provider_sql
from shared.db.orders import reads as orders
from shared.domain.statuses import OrderState
from shared.settings import Settings

ACCOUNT_COLUMNS = ("id", "email", "balance", "currency", "tier", "status")
SERVICE_COLUMNS = ("id", "name", "type", "category", "rate", "cost_rate", "min_quantity", "max_quantity",
                   "provider_id", "provider_service_id", "active")  # fmt: skip
ORDER_COLUMNS = ("id", "account_id", "service_id", "status", "quantity", "charge", "refunded", "remains",
                 "provider_order_id", "created_at")  # fmt: skip


def json_flag(parser: Parser) -> Parser:
    parser.add_argument("--json", action="store_true", help="JSON (one object per line) instead of columns")
    return parser


def add_account_lookups(sub: argparse._SubParsersAction[Parser], show: Parser) -> None:
    listing = json_flag(sub.add_parser("list", help="list accounts", description="list accounts"))
    listing.set_defaults(handler=list_accounts)
    listing.add_argument("--status", choices=["active", "suspended"])
    listing.add_argument("--limit", type=positive_int, default=1000)
    json_flag(show)


def add_service_lookups(sub: argparse._SubParsersAction[Parser]) -> None:
    listing = json_flag(sub.add_parser("list", help="list services", description="list services"))
    listing.set_defaults(handler=list_services)
    listing.add_argument("--provider", type=positive_int, help="only this provider's services")
    listing.add_argument("--active", action="store_true", help="only services on sale")
    show = json_flag(sub.add_parser("show", help="print one service", description="print one service"))
    show.set_defaults(handler=show_service)
    show.add_argument("--service", type=positive_int, required=True)


def add_provider_show(sub: argparse._SubParsersAction[Parser]) -> None:
    show = json_flag(
        sub.add_parser("show", help="print one provider (never its key)", description="print one provider")
    )
    show.set_defaults(handler=show_provider)
    show.add_argument("--provider", type=positive_int, required=True)


def add_key_show(sub: argparse._SubParsersAction[Parser]) -> None:
    show = json_flag(
        sub.add_parser("show", help="print one key by its prefix (never the key)", description="print one key")
    )
    show.set_defaults(handler=show_key)
    show.add_argument("--prefix", required=True)


def add_order_lookups(sub: argparse._SubParsersAction[Parser]) -> None:
    listing = json_flag(sub.add_parser("list", help="list orders, newest first", description="list orders"))
    listing.set_defaults(handler=list_orders)
    listing.add_argument("--account", type=positive_int)
    listing.add_argument("--status", choices=[str(s) for s in OrderState], help="stored status (unknown: parked)")
    listing.add_argument("--limit", type=positive_int, default=100)
    show = json_flag(sub.add_parser("show", help="print one order", description="print one order"))
    show.set_defaults(handler=show_order)
    show.add_argument("--order", type=positive_int, required=True)


async def list_accounts(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        found = await accounts.list_accounts(conn, status=args.status, limit=args.limit)
    emit([asdict(a) for a in found], ACCOUNT_COLUMNS, as_json=args.json)
    return 0


async def show_account(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        row = await accounts.get_account(conn, args.account)
    if row is None:
        raise CommandError(f"account {args.account} not found")
    emit_one(asdict(row), as_json=args.json)
    return 0


async def list_services(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        found = await catalog.list_services(conn, provider_id=args.provider, active_only=args.active)
    emit([asdict(s) for s in found], SERVICE_COLUMNS, as_json=args.json)
    return 0


async def show_service(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        row = await catalog.get_service(conn, args.service)
    if row is None:
        raise CommandError(f"service {args.service} not found")
    emit_one(asdict(row), as_json=args.json)
    return 0


async def list_orders(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        found = await orders.list_orders(conn, account_id=args.account, status=args.status, limit=args.limit)
    emit([asdict(o) for o in found], ORDER_COLUMNS, as_json=args.json)
    return 0


async def show_order(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        row = await orders.get_order(conn, args.order)
    if row is None:
        raise CommandError(f"order {args.order} not found")
    emit_one(asdict(row), as_json=args.json)
    return 0


async def show_provider(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        found = await provider_sql.get_provider(conn, args.provider)
        services = await catalog.list_services(conn, provider_id=args.provider) if found else []
    if found is None:
        raise CommandError(f"provider {args.provider} not found")
    shown = {name: value for name, value in asdict(found).items() if name not in provider_sql.KEY_FIELDS}
    record = {**shown, "services": len(services), "services_active": sum(s.active for s in services)}
    emit_one(record, as_json=args.json)
    return 0


async def show_key(args: argparse.Namespace, settings: Settings) -> int:
    prefix = args.prefix.strip()
    async with database(settings) as conn:
        found = [k for k in await keys.list_keys(conn) if k.prefix == prefix]
    if not found:
        raise CommandError(f"no key with prefix {prefix!r}")
    record = asdict(found[0])
    record["state"] = "revoked" if record.pop("revoked") else "active"
    if record["last_used_at"] is None and not args.json:
        record["last_used_at"] = "never"
    emit_one(record, as_json=args.json)
    return 0
