"""`panelflow key create|revoke`. A key is printed once, at creation; only its SHA-256 is stored."""

from __future__ import annotations

import argparse

import asyncpg

from shared.auth.keys import SCOPES, generate_key, hash_key, key_prefix, parse_scopes
from shared.cli.base import CommandError, Subparsers, cidr_list, command, database, group, per_minute, positive_int
from shared.db import keys
from shared.settings import Settings


def register(commands: Subparsers) -> None:
    sub = group(commands, "key", "API keys of reseller accounts")
    create = command(sub, "create", "create an API key; prints the key (shown only this once)", _create)
    create.add_argument("--account", type=positive_int, required=True)
    create.add_argument("--scopes", default=",".join(SCOPES), help=f"comma-separated subset of {','.join(SCOPES)}")
    create.add_argument("--allow-ip", type=cidr_list, help="comma-separated IPs/CIDRs the key may be used from")
    create.add_argument("--rate-limit", type=per_minute, help="requests per minute for this key, e.g. 600/min")
    revoke = command(sub, "revoke", "revoke a key by its prefix (the first 12 characters)", _revoke)
    revoke.add_argument("--prefix", required=True)


async def _create(args: argparse.Namespace, settings: Settings) -> int:
    try:
        scopes = parse_scopes(args.scopes)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    key = generate_key()
    async with database(settings) as conn:
        try:
            await keys.insert_key(
                conn,
                account_id=args.account,
                key_hash=hash_key(key),
                prefix=key_prefix(key),
                scopes=scopes,
                allow_ips=args.allow_ip,
                rate_limit_per_min=args.rate_limit,
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise CommandError(f"account {args.account} not found") from exc
    print(key)
    return 0


async def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        revoked = await keys.revoke_key(conn, prefix=args.prefix.strip())
    if not revoked:
        raise CommandError(f"no active key with prefix {args.prefix!r}")
    print(f"key {args.prefix.strip()} revoked")
    return 0
