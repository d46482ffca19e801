"""`panelflow services sync --provider ID [--markup PCT]`: import or refresh a provider's catalog."""

from __future__ import annotations

import argparse
import sys

from shared.catalog.sync import SyncError, sync_provider
from shared.cli.base import CommandError, Subparsers, command, database, group, non_negative_amount, positive_int
from shared.domain.money import MINIMUM_CHARGE
from shared.settings import Settings
from shared.upstream.results import UpstreamError


def register(commands: Subparsers) -> None:
    services = group(commands, "services", "services bought from upstream providers")
    sync = command(services, "sync", "import or refresh a provider's services; prints a summary", _sync)
    sync.add_argument("--provider", type=positive_int, required=True, help="the provider's id")
    sync.add_argument(
        "--markup",
        type=non_negative_amount,
        help="percent over cost for every service of the provider (default: new services get "
        "PANELFLOW_CATALOG_DEFAULT_MARKUP_PCT, existing ones keep their sell rate)",
    )


async def _sync(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        try:
            summary = await sync_provider(conn, settings, args.provider, markup_pct=args.markup)
        except SyncError as exc:
            raise CommandError(str(exc)) from exc
        except UpstreamError as exc:
            raise CommandError(f"provider {args.provider} did not give its services: {exc.reason}") from exc
    print(summary.line())
    for label, ids in (("added", summary.added), ("updated", summary.updated), ("deactivated", summary.deactivated)):
        if ids:
            print(f"  {label}: {', '.join(ids)}")
    if summary.skipped:
        print(
            f"warning: {len(summary.skipped)} upstream services skipped (unknown type or bad numbers)", file=sys.stderr
        )
    if summary.below_cost:
        print(f"warning: sell rate below cost for provider services {', '.join(summary.below_cost)}", file=sys.stderr)
    if summary.charges_nothing:
        print(
            f"warning: sell rate charges less than {MINIMUM_CHARGE} for the minimum quantity of provider services "
            f"{', '.join(summary.charges_nothing)}: orders below that are refused; raise the rate (--markup)",
            file=sys.stderr,
        )
    return 0
