"""`panelflow migrate`: create the database when missing, apply the numbered migrations, then encrypt any
provider key still in plaintext (a migration cannot: the key is in PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY)."""

from __future__ import annotations

import argparse

import asyncpg

from shared.catalog import providers
from shared.cli.base import CommandError, Subparsers, command, database, database_error
from shared.crypto.secretbox import SecretBoxError, provider_key_box
from shared.db import catalog
from shared.db.migrate import migrate
from shared.db.pool import database_name, ensure_database
from shared.settings import Settings


def register(commands: Subparsers) -> None:
    command(commands, "migrate", "create the database if missing and apply pending migrations", _migrate)


async def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        created = await ensure_database(settings.database_url)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise database_error(settings, exc) from exc
    if created:
        print(f"created database {database_name(settings.database_url)}")
    async with database(settings) as conn:
        applied = await migrate(conn)
        if applied:
            print("applied migrations: " + ", ".join(f"{v:03d}" for v in applied))
        else:
            print("database is up to date")
        if await catalog.has_plaintext_provider_keys(conn):
            try:
                report = await providers.encrypt_provider_keys(conn, provider_key_box(settings), rotate=False)
            except SecretBoxError as exc:
                raise CommandError(str(exc)) from exc
            print(f"encrypted {report.encrypted} provider keys")
    return 0
