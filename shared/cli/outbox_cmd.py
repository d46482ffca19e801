"""`panelflow outbox purge`: delete published outbox rows older than the retention, now."""

from __future__ import annotations

import argparse
from datetime import timedelta

from shared.cli.base import Subparsers, command, database, group, span
from shared.db.types import one_connection
from shared.messaging import outbox_retention
from shared.settings import Settings


def register(commands: Subparsers) -> None:
    sub = group(commands, "outbox", "the transactional outbox the relay publishes from")
    purge = command(
        sub,
        "purge",
        "delete rows published longer ago than the retention (unpublished rows stay); prints how many",
        _purge,
    )
    purge.add_argument(
        "--older-than",
        type=span("hours", zero=True),
        metavar="HOURS",
        help="hours (default PANELFLOW_OUTBOX_RETENTION_HOURS)",
    )


async def _purge(args: argparse.Namespace, settings: Settings) -> int:
    hours = args.older_than if args.older_than is not None else settings.outbox_retention_hours
    async with database(settings) as conn:
        deleted = await outbox_retention.purge(one_connection(conn), settings, older_than=timedelta(hours=hours))
    print(f"purged {deleted} outbox rows published more than {hours:g} hours ago")
    return 0
