"""`panelflow migrate`: create the database when missing, apply the numbered migrations, then encrypt any
provider key still in plaintext (a migration cannot: the key is in PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY).

`panelflow migrate --wait` first waits for the database to accept connections (an init container starting beside
it); `panelflow migrate status` says what is applied and pending, with an exit code for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_fixed

from shared.catalog import providers
from shared.cli.base import CommandError, Subparsers, command, database, database_error
from shared.crypto.secretbox import SecretBoxError, provider_key_box
from shared.db import providers as provider_sql
from shared.db.migrate import ChangedMigrationError, SchemaStatus, migrate, status
from shared.db.pool import database_name, ensure_database
from shared.settings import Settings

T = TypeVar("T")

# `panelflow migrate status` exit codes (1 stays "could not tell": database unreachable, bad settings).
UP_TO_DATE = 0
PENDING = 3
CHANGED = 4

# What a database still starting up, or not reachable yet, raises.
_NOT_YET = (OSError, TimeoutError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


def register(commands: Subparsers) -> None:
    parser = command(
        commands,
        "migrate",
        "create the database if missing and apply pending migrations; `migrate status` only reports "
        f"(exit {UP_TO_DATE} up to date, {PENDING} migrations pending, {CHANGED} an applied file changed)",
        _migrate,
    )
    parser.add_argument("action", nargs="?", choices=["status"], help="report only, change nothing")
    parser.add_argument("--wait", action="store_true", help="wait for the database to accept connections first")
    parser.add_argument(
        "--wait-timeout", type=float, default=300.0, metavar="SECONDS", help="give up waiting after this (300)"
    )
    parser.add_argument("--json", action="store_true", help="`status` as one JSON object")


def _not_yet(exc: BaseException) -> bool:
    return isinstance(exc, _NOT_YET) or isinstance(exc.__cause__, _NOT_YET)  # raw, or as a CommandError


async def _when_reachable(action: Callable[[], Awaitable[T]], timeout: float) -> T:
    """`action()`, retried every second while the database server is not reachable yet, for up to `timeout`."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(_not_yet), stop=stop_after_delay(timeout), wait=wait_fixed(1), reraise=True
    ):
        with attempt:
            if attempt.retry_state.attempt_number == 2:
                print("waiting for the database...", file=sys.stderr)
            return await action()
    raise AssertionError("unreachable")  # AsyncRetrying either returns or reraises


async def _status(settings: Settings) -> SchemaStatus:
    async with database(settings) as conn:
        return await status(conn)


async def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    timeout = args.wait_timeout if args.wait else 0.0
    if args.action == "status":  # changes nothing, not even a missing database
        found = await _when_reachable(lambda: _status(settings), timeout)
        return _report(found, as_json=args.json)
    try:
        created = await _when_reachable(lambda: ensure_database(settings.database_url), timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise database_error(settings, exc) from exc
    if created:
        print(f"created database {database_name(settings.database_url)}")
    async with database(settings) as conn:
        try:
            applied = await migrate(conn)
        except ChangedMigrationError as exc:
            print(f"panelflow: {exc}", file=sys.stderr)
            return CHANGED
        if applied:
            print("applied migrations: " + ", ".join(f"{v:03d}" for v in applied))
        else:
            print("database is up to date")
        if await provider_sql.has_plaintext_provider_keys(conn):
            try:
                report = await providers.encrypt_provider_keys(conn, provider_key_box(settings), rotate=False)
            except SecretBoxError as exc:
                raise CommandError(str(exc)) from exc
            print(f"encrypted {report.encrypted} provider keys")
    return 0


def _report(found: SchemaStatus, *, as_json: bool) -> int:
    code = CHANGED if found.changed else PENDING if found.pending else UP_TO_DATE
    changed = {m.version for m in found.changed}
    if as_json:
        document = {
            "up_to_date": found.up_to_date,
            "applied": [
                {
                    "version": a.version,
                    "name": a.name,
                    "applied_at": a.applied_at.isoformat(),
                    "checksum": a.checksum,
                    "changed": a.version in changed,
                }
                for a in found.applied
            ],
            "pending": [{"version": m.version, "name": m.name, "checksum": m.checksum} for m in found.pending],
            "unknown": [a.version for a in found.unknown],
        }
        print(json.dumps(document, indent=2))
        return code
    rows = [("VERSION", "NAME", "STATE", "APPLIED AT", "CHECKSUM")]
    unknown = {a.version for a in found.unknown}
    for a in found.applied:
        state = "CHANGED" if a.version in changed else "unknown" if a.version in unknown else "applied"
        rows.append((f"{a.version:03d}", a.name, state, a.applied_at.isoformat(timespec="seconds"), a.checksum or "-"))
    for m in found.pending:
        rows.append((f"{m.version:03d}", m.name, "pending", "-", m.checksum))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if found.changed:
        print("changed after they were applied: restore these files as applied", file=sys.stderr)
    elif found.pending:
        print(f"{len(found.pending)} migrations pending: run `panelflow migrate`", file=sys.stderr)
    if found.unknown:
        print("applied by a newer release (not known to this one): " + ", ".join(f"{v:03d}" for v in unknown),
              file=sys.stderr)  # fmt: skip
    return code
