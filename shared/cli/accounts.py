"""`panelflow account create|topup|suspend|resume|show`."""

from __future__ import annotations

import argparse
import re

import asyncpg

from shared.cli import lookups
from shared.cli.base import (
    CommandError,
    Subparsers,
    amount,
    command,
    database,
    group,
    non_negative_amount,
    positive_int,
)
from shared.db import accounts
from shared.domain.money import ZERO, format_money
from shared.settings import Settings

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


def register(commands: Subparsers) -> None:
    sub = group(commands, "account", "reseller accounts and their balance")
    create = command(sub, "create", "create an account; prints its id", _create)
    create.add_argument("--email", required=True)
    create.add_argument("--balance", type=non_negative_amount, default=ZERO, help="opening balance (default 0)")
    create.add_argument("--tier", default="standard", help="rate-limit tier (PANELFLOW_RATE_LIMIT_TIER_PER_MIN)")
    topup = command(sub, "topup", "add money to an account; prints the new balance", _topup)
    topup.add_argument("--account", type=positive_int, required=True)
    topup.add_argument("--amount", type=amount, required=True)
    for name, status in (("suspend", "suspended"), ("resume", "active")):
        cmd = command(sub, name, f"set an account {status}", _set_status)
        cmd.add_argument("--account", type=positive_int, required=True)
        cmd.set_defaults(status=status)
    show = command(sub, "show", "print an account's balance, tier and status", lookups.show_account)
    show.add_argument("--account", type=positive_int, required=True)
    lookups.add_account_lookups(sub, show)


async def _create(args: argparse.Namespace, settings: Settings) -> int:
    email = args.email.strip()
    if not EMAIL_RE.match(email):
        raise CommandError(f"not an email address: {args.email!r}")
    tiers = settings.rate_limit_tier_per_min
    if args.tier not in tiers:
        raise CommandError(f"unknown tier {args.tier!r}: one of {', '.join(sorted(tiers))}")
    async with database(settings) as conn:
        try:
            account_id = await accounts.create_account(
                conn, email=email, balance=args.balance, tier=args.tier, currency=settings.currency
            )
        except asyncpg.UniqueViolationError as exc:
            raise CommandError(f"an account with email {email} already exists") from exc
    print(account_id)
    return 0


async def _topup(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        try:
            balance = await accounts.topup(conn, account_id=args.account, amount=args.amount)
        except accounts.AccountNotFound as exc:
            raise CommandError(f"account {args.account} not found") from exc
    print(format_money(balance))
    return 0


async def _set_status(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        try:
            await accounts.set_status(conn, account_id=args.account, status=args.status)
        except accounts.AccountNotFound as exc:
            raise CommandError(f"account {args.account} not found") from exc
    print(f"account {args.account} {args.status}")
    return 0
