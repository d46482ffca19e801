"""`panelflow demo seed`: the demo account, key, catalog and webhook (see `shared/demo.py`); prints KEY=value lines.

The lines (the key and the webhook secret among them) are what `make run` keeps in `.run/demo.env`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from shared import demo
from shared.cli.base import CommandError, Subparsers, command, database, group
from shared.settings import Settings


def register(commands: Subparsers) -> None:
    sub = group(commands, "demo", "the demo account, key, catalog and webhook")
    seed = command(sub, "seed", "create or refresh the demo (idempotent); prints PANELFLOW_DEMO_* lines", _seed)
    seed.add_argument(
        "--key-file",
        type=Path,
        default=Path(".run/demo-key"),
        help="where the demo key is kept (default .run/demo-key)",
    )
    seed.add_argument(
        "--webhook-secret-file",
        type=Path,
        help="also write the demo webhook's secret here (mode 0600), for a receiver that reads it from a file",
    )


def _read_key(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CommandError(f"cannot read the demo key from {path}: {exc.strerror}") from exc


def _write_secret(path: Path, secret: str, what: str) -> None:
    """Only the owner can read it; written whole or not at all (a reader waiting for the file never sees half)."""
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secret + "\n")
        os.replace(partial, path)
    except OSError as exc:
        raise CommandError(f"cannot write the {what} to {path}: {exc.strerror}") from exc


async def _seed(args: argparse.Namespace, settings: Settings) -> int:
    key_file: Path = args.key_file
    known_key = _read_key(key_file)
    # Written inside the transaction: an unwritable key file rolls its key back (a key nobody can read is
    # useless), and a key file whose commit then failed is simply replaced by the next seed.
    async with database(settings) as conn, conn.transaction():
        result = await demo.seed(conn, settings, known_key=known_key)
        if result.key_created:
            _write_secret(key_file, result.key, "demo key")
    if result.key_created:
        print(f"new demo key written to {key_file}", file=sys.stderr)
    if args.webhook_secret_file is not None:
        _write_secret(args.webhook_secret_file, result.webhook_secret, "demo webhook secret")
    print(f"PANELFLOW_DEMO_ACCOUNT={result.account_id}")
    print(f"PANELFLOW_DEMO_KEY={result.key}")
    print(f"PANELFLOW_DEMO_SERVICE={result.default_service_id}")
    print(f"PANELFLOW_DEMO_WEBHOOK={result.webhook_id}")
    print(f"PANELFLOW_DEMO_WEBHOOK_URL={result.webhook_url}")
    print(f"PANELFLOW_DEMO_WEBHOOK_SECRET={result.webhook_secret}")
    return 0
