"""`panelflow provider add|list|set|set-key|encrypt-keys` and `panelflow service add`: build a catalog by hand.

Our key at a provider comes from a file or stdin (`--key-file PATH`, `-` = stdin), never from the command line.

Our key at a provider is stored encrypted with `PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY` (shared.catalog.providers);
`encrypt-keys` encrypts any key still in plaintext and re-encrypts every key under the setting's first key.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal

import asyncpg

from shared.catalog import providers
from shared.cli import lookups
from shared.cli.base import (
    CommandError,
    Subparsers,
    command,
    database,
    group,
    http_url,
    non_negative_amount,
    non_negative_int,
    positive_int,
    secret_option,
)
from shared.crypto.secretbox import SecretBox, SecretBoxError, provider_key_box
from shared.db import catalog
from shared.db import providers as provider_sql
from shared.domain.money import MINIMUM_CHARGE, charges_nothing, smallest_payable_quantity
from shared.domain.order_types import FLAT_TYPES, ORDER_TYPES
from shared.net.guard import InvalidUrl
from shared.settings import Settings

_IDEMPOTENT_HELP = (
    "the provider honours request_id on add (the same id twice buys one order and answers its id): an order whose "
    "outcome is unknown (timeout, 5xx, worker stopped mid-call) is sent again with the same request_id instead of "
    "being parked. Only for providers known to do so"
)


def register(commands: Subparsers) -> None:
    providers = group(commands, "provider", "upstream providers (panels speaking API v2)")
    add_provider = command(providers, "add", "add an upstream provider; prints its id", _add_provider)
    add_provider.add_argument("--name", required=True)
    add_provider.add_argument("--url", type=http_url, required=True, help="its API v2 endpoint")
    secret_option(add_provider, "key", "a file holding our API key at the provider (stored encrypted)")
    add_provider.add_argument("--idempotent", action="store_true", help=_IDEMPOTENT_HELP)
    listing = command(providers, "list", "list the providers: id, name, url, active, idempotent", _list_providers)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    lookups.add_provider_show(providers)
    set_provider = command(providers, "set", "change how panelflow treats a provider", _set_provider)
    set_provider.add_argument("--provider", type=positive_int, required=True, help="provider id")
    idempotent = set_provider.add_mutually_exclusive_group(required=True)
    idempotent.add_argument("--idempotent", action="store_true", dest="idempotent", default=None, help=_IDEMPOTENT_HELP)
    idempotent.add_argument(
        "--no-idempotent",
        action="store_false",
        dest="idempotent",
        help="the provider may create a second order for a repeated request_id: an unknown outcome parks the order",
    )
    set_key = command(providers, "set-key", "replace our API key at a provider (stored encrypted)", _set_key)
    set_key.add_argument("--provider", type=positive_int, required=True, help="provider id")
    secret_option(set_key, "key", "a file holding our new API key at the provider")
    command(
        providers,
        "encrypt-keys",
        "encrypt provider keys still in plaintext and re-encrypt all under the first key of "
        "PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY (after adding a new key in front); prints the counts",
        _encrypt_keys,
    )

    services = group(commands, "service", "services of the catalog resellers order from")
    lookups.add_service_lookups(services)
    add = command(services, "add", "add a service; prints its id", _add_service)
    add.add_argument("--name", required=True)
    add.add_argument("--type", required=True, help="an order type of the API v2 contract, e.g. Default")
    add.add_argument("--rate", type=non_negative_amount, required=True, help="sell price per 1000 (flat: packages)")
    add.add_argument("--min", type=non_negative_int, required=True, dest="min_quantity")
    add.add_argument("--max", type=positive_int, required=True, dest="max_quantity")
    add.add_argument("--category", default="")
    add.add_argument("--refill", action="store_true", help="resellers may request refills")
    add.add_argument("--cancel", action="store_true", help="resellers may cancel")
    add.add_argument("--dripfeed", action="store_true", help="Default orders may use runs/interval")
    add.add_argument("--provider", type=positive_int, help="upstream provider id")
    add.add_argument("--provider-service", help="the service id at the provider")
    add.add_argument("--cost-rate", type=non_negative_amount, help="what the provider charges per 1000")


async def _add_provider(args: argparse.Namespace, settings: Settings) -> int:
    name = args.name.strip()
    if not name:
        raise CommandError("--name must not be empty")
    try:
        warning = await providers.check_url(args.url, settings)
    except InvalidUrl as exc:
        raise CommandError(f"--url refused: {exc}") from exc
    box = _box(settings)
    async with database(settings) as conn:
        try:
            provider_id = await providers.add_provider(
                conn, box, name=name, url=args.url, api_key=args.key, idempotent=args.idempotent
            )
        except asyncpg.UniqueViolationError as exc:
            raise CommandError(f"a provider named {name!r} already exists") from exc
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)
    print(provider_id)
    return 0


async def _list_providers(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        rows = await provider_sql.list_providers(conn)
    for p in rows:
        if args.json:
            print(json.dumps({"provider": p.id, "name": p.name, "url": p.url, "active": p.active,
                              "idempotent": p.idempotent}))  # fmt: skip
        else:
            flags = ("active" if p.active else "inactive") + (", idempotent" if p.idempotent else "")
            print(f"provider {p.id}  {p.name}  {p.url}  ({flags})")
    return 0


async def _set_provider(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        if not await provider_sql.set_provider_idempotent(conn, args.provider, args.idempotent):
            raise CommandError(f"provider {args.provider} not found")
    print(f"provider {args.provider}: {'idempotent' if args.idempotent else 'not idempotent'}")
    return 0


async def _set_key(args: argparse.Namespace, settings: Settings) -> int:
    box = _box(settings)
    async with database(settings) as conn:
        if not await providers.set_provider_key(conn, box, args.provider, args.key):
            raise CommandError(f"provider {args.provider} not found")
    print(f"provider {args.provider}: key replaced")
    return 0


async def _encrypt_keys(args: argparse.Namespace, settings: Settings) -> int:
    box = _box(settings)
    async with database(settings) as conn:
        try:
            report = await providers.encrypt_provider_keys(conn, box, rotate=True)
        except SecretBoxError as exc:
            raise CommandError(str(exc)) from exc
    print(f"encrypted {report.encrypted}, re-encrypted {report.reencrypted} provider keys")
    return 0


def _box(settings: Settings) -> SecretBox:
    try:
        return provider_key_box(settings)
    except SecretBoxError as exc:
        raise CommandError(str(exc)) from exc


async def _add_service(args: argparse.Namespace, settings: Settings) -> int:
    if args.type not in ORDER_TYPES:
        raise CommandError(f"unknown type {args.type!r}: one of {', '.join(ORDER_TYPES)}")
    if not args.name.strip():
        raise CommandError("--name must not be empty")
    if args.min_quantity > args.max_quantity:
        raise CommandError(f"--min ({args.min_quantity}) must not exceed --max ({args.max_quantity})")
    if (args.provider is None) != (args.provider_service is None):
        raise CommandError("--provider and --provider-service go together")
    if args.dripfeed and args.type != "Default":
        raise CommandError("--dripfeed applies to Default services only")
    flat = args.type in FLAT_TYPES
    if charges_nothing(args.rate, max(args.min_quantity, 1), flat=flat):
        least = smallest_payable_quantity(args.rate, flat=flat)
        fix = "raise --rate" if least is None else f"raise --rate, or --min to at least {least}"
        raise CommandError(
            f"--rate {args.rate} would charge less than {MINIMUM_CHARGE} for --min {args.min_quantity} "
            f"(every order costs at least {MINIMUM_CHARGE}): {fix}"
        )
    async with database(settings) as conn:
        try:
            service_id = await catalog.add_service(
                conn,
                name=args.name.strip(),
                type=args.type,
                category=args.category,
                rate=args.rate,
                cost_rate=args.cost_rate if args.cost_rate is not None else Decimal(0),
                min_quantity=args.min_quantity,
                max_quantity=args.max_quantity,
                refill=args.refill,
                cancel=args.cancel,
                dripfeed=args.dripfeed,
                provider_id=args.provider,
                provider_service_id=args.provider_service,
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise CommandError(f"provider {args.provider} not found") from exc
        except asyncpg.UniqueViolationError as exc:
            raise CommandError(
                f"provider {args.provider} service {args.provider_service} is already in the catalog"
            ) from exc
    print(service_id)
    return 0
