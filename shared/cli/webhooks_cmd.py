"""`panelflow webhooks list|deliveries|replay|enable|disable|purge|encrypt-secrets`: operators' view of every
account's endpoints."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime

from shared.cli.base import CommandError, Subparsers, command, database, group, positive_int, span
from shared.db import webhooks as db
from shared.db.types import one_connection
from shared.settings import Settings
from shared.webhooks import retention
from shared.webhooks.secretbox import SecretBox, SecretBoxError, reencrypt_secrets


def register(commands: Subparsers) -> None:
    sub = group(commands, "webhooks", "webhook endpoints, their delivery log, replay, enable/disable")
    listing = command(sub, "list", "list endpoints (all accounts, or one)", _list)
    listing.add_argument("--account", type=positive_int)
    log = command(sub, "deliveries", "recent deliveries of an endpoint, newest first", _deliveries)
    log.add_argument("--webhook", type=positive_int, required=True)
    log.add_argument("--limit", type=positive_int, default=20)
    replay = command(sub, "replay", "send one event, or every event since a time, to an endpoint again", _replay)
    replay.add_argument("--webhook", type=positive_int, required=True)
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("--event", type=uuid.UUID, help="event id (the webhook-id header)")
    target.add_argument("--since", type=_moment, help="unix seconds or ISO 8601 time")
    enable = command(sub, "enable", "enable an endpoint again (its skipped events can then be replayed)", _enable)
    enable.add_argument("--webhook", type=positive_int, required=True)
    disable = command(sub, "disable", "disable an endpoint; events arriving meanwhile are kept as skipped", _disable)
    disable.add_argument("--webhook", type=positive_int, required=True)
    disable.add_argument("--reason", default="disabled by an operator")
    purge = command(
        sub,
        "purge",
        "delete finished deliveries, their attempts and unreferenced events older than the retention "
        "(pending deliveries stay); prints what went",
        _purge,
    )
    purge.add_argument(
        "--older-than", type=span("days"), metavar="DAYS", help="days (default PANELFLOW_WEBHOOK_RETENTION_DAYS)"
    )
    command(
        sub,
        "encrypt-secrets",
        "re-encrypt every endpoint's secret under the first key of PANELFLOW_WEBHOOK_SECRET_KEY (to retire the others)",
        _encrypt_secrets,
    )


def _moment(text: str) -> datetime:
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError) as exc:
        raise argparse.ArgumentTypeError("expected unix seconds or an ISO 8601 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        endpoints = await db.list_endpoints(conn, args.account)
    print("id\taccount\tenabled\tfailing_since\tevents\turl\tdisabled_reason")
    for e in endpoints:
        print(
            f"{e.id}\t{e.account_id}\t{'yes' if e.enabled else 'no'}\t{_when(e.failing_since)}\t"
            f"{','.join(e.events)}\t{e.url}\t{e.disabled_reason or ''}"
        )
    return 0


async def _deliveries(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        if await db.get_endpoint(conn, args.webhook) is None:
            raise CommandError(f"webhook {args.webhook} not found")
        rows = await db.list_deliveries(conn, args.webhook, args.limit)
    print("event\ttype\tstatus\tattempts\tlast_status\tnext_attempt_at\tlast_error")
    for r in rows:
        print(
            f"{r['event_id']}\t{r['type']}\t{r['status']}\t{r['attempts']}\t{r['last_status'] or '-'}\t"
            f"{_when(r['next_attempt_at'])}\t{r['last_error'] or ''}"
        )
    return 0


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        endpoint = await db.get_endpoint(conn, args.webhook)
        if endpoint is None:
            raise CommandError(f"webhook {args.webhook} not found")
        if not endpoint.enabled:
            raise CommandError(f"webhook {args.webhook} is disabled; enable it first")
        count = await db.replay(
            conn, endpoint_id=endpoint.id, account_id=endpoint.account_id, event_id=args.event, since=args.since
        )
    print(f"replayed {count}")
    return 0


async def _enable(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        if not await db.enable_endpoint(conn, args.webhook):
            raise CommandError(f"webhook {args.webhook} not found")
    print(f"webhook {args.webhook} enabled")
    return 0


async def _disable(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        if not await db.disable_endpoint(conn, args.webhook, args.reason):
            raise CommandError(f"webhook {args.webhook} not found")
    print(f"webhook {args.webhook} disabled")
    return 0


async def _purge(args: argparse.Namespace, settings: Settings) -> int:
    days = args.older_than if args.older_than is not None else settings.webhook_retention_days
    try:
        older_than = retention.retention(settings, days)
    except retention.RetentionTooShort as exc:
        raise CommandError(str(exc)) from exc
    async with database(settings) as conn:
        report = await retention.purge(one_connection(conn), settings, older_than=older_than)
    print(
        f"purged {report.events} events, {report.deliveries} deliveries, {report.attempts} attempts "
        f"older than {days:g} days"
    )
    return 0


async def _encrypt_secrets(args: argparse.Namespace, settings: Settings) -> int:
    try:
        box = SecretBox(settings)
        async with database(settings) as conn:
            count = await reencrypt_secrets(conn, box)
    except SecretBoxError as exc:
        raise CommandError(str(exc)) from exc
    print(f"re-encrypted the secrets of {count} webhooks")
    return 0
