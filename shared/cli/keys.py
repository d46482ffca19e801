"""`panelflow key create|list|set-profile|revoke`. A key is printed once, at creation; only its SHA-256 is stored."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from shared.auth.keys import PROFILES, SCOPES, STRICT, generate_key, hash_key, key_prefix, parse_scopes
from shared.cli import lookups
from shared.cli.base import CommandError, Subparsers, cidr_list, command, database, group, per_minute, positive_int
from shared.cli.output import emit
from shared.db import keys
from shared.settings import Settings

_PROFILE_HELP = (
    "strict (default): the contract as written, add needs a request_id; classic: for programs written for classic"
    " panels, add without request_id is accepted and errors other than 429 are answered with HTTP 200"
)


def register(commands: Subparsers) -> None:
    sub = group(commands, "key", "API keys of reseller accounts")
    create = command(sub, "create", "create an API key; prints the key (shown only this once)", _create)
    create.add_argument("--account", type=positive_int, required=True)
    create.add_argument("--scopes", default=",".join(SCOPES), help=f"comma-separated subset of {','.join(SCOPES)}")
    create.add_argument("--allow-ip", type=cidr_list, help="comma-separated IPs/CIDRs the key may be used from")
    create.add_argument("--rate-limit", type=per_minute, help="requests per minute for this key, e.g. 600/min")
    create.add_argument("--profile", choices=PROFILES, default=STRICT, help=_PROFILE_HELP)
    listing = command(
        sub, "list", "list keys (prefix, account, profile, state, scopes, IPs, limit, last use; never the key)", _list
    )
    listing.add_argument("--account", type=positive_int)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    lookups.add_key_show(sub)
    profile = command(sub, "set-profile", "change the compatibility profile of a key, by its prefix", _set_profile)
    profile.add_argument("--prefix", required=True)
    profile.add_argument("--profile", choices=PROFILES, required=True, help=_PROFILE_HELP)
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
                profile=args.profile,
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


# The columns of `key list`. --json carries the same facts as values (lists, numbers, null for none; the last use
# in ISO 8601, null for a key not used yet).
KEY_COLUMNS = ("prefix", "account", "profile", "state", "scopes", "allow_ips", "rate_limit", "last_used_at")


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        found = await keys.list_keys(conn, account_id=args.account)
    records: list[dict[str, Any]]
    if args.json:
        records = [
            {
                "prefix": k.prefix,
                "account": k.account_id,
                "profile": k.profile,
                "scopes": list(k.scopes),
                "allow_ips": None if k.allow_ips is None else list(k.allow_ips),
                "rate_limit_per_min": k.rate_limit_per_min,
                "state": "revoked" if k.revoked else "active",
                "last_used_at": k.last_used_at,
            }
            for k in found
        ]
    else:
        records = [
            {
                "prefix": k.prefix,
                "account": k.account_id,
                "profile": k.profile,
                "state": "revoked" if k.revoked else "active",
                "scopes": k.scopes,
                "allow_ips": k.allow_ips or "any",
                "rate_limit": f"{k.rate_limit_per_min}/min" if k.rate_limit_per_min else "default",
                "last_used_at": k.last_used_at or "never",
            }
            for k in found
        ]
    emit(records, KEY_COLUMNS, as_json=args.json)
    return 0


async def _set_profile(args: argparse.Namespace, settings: Settings) -> int:
    prefix = args.prefix.strip()
    async with database(settings) as conn:
        changed = await keys.set_profile(conn, prefix=prefix, profile=args.profile)
    if not changed:
        raise CommandError(f"no active key with prefix {prefix!r}")
    print(f"key {prefix}: profile {args.profile}")
    return 0
