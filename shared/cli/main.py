"""The `panelflow` admin command line: `panelflow <group> <command> [options]`.

Adding a command group (e.g. `panelflow orders parked|resolve`):
1. write `shared/cli/<name>.py` with `def register(commands: Subparsers) -> None` that adds the group with
   `base.group(...)` and its commands with `base.command(..., handler=...)`; a handler is
   `async def handler(args: argparse.Namespace, settings: Settings) -> int` (the exit status), opens the
   database with `async with base.database(settings) as conn:`, calls SQL from `shared/db/*`, prints its
   result on stdout and raises `base.CommandError("one line")` for operator mistakes;
2. add ONE line, the module's dotted name, to `GROUPS` below.
Tests: `tests/cli/` runs the installed command as a subprocess (see `tests/cli/conftest.py`).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Sequence
from importlib import metadata

from pydantic import ValidationError

from shared.cli.base import CommandError, Handler, Parser
from shared.crypto.secretbox import SecretBoxError
from shared.logging import configure_logging
from shared.settings import Settings

# Command groups, in the order `panelflow --help` lists them. One line per module.
GROUPS: tuple[str, ...] = (
    "shared.cli.migrate",
    "shared.cli.accounts",
    "shared.cli.keys",
    "shared.cli.catalog",
    "shared.cli.services_cmd",
    "shared.cli.ledger",
    "shared.cli.demo",
    "shared.cli.orders_cmd",
    "shared.cli.dlq_cmd",
    "shared.cli.outbox_cmd",
    "shared.cli.webhooks_cmd",
)


def _version() -> str:
    try:
        return metadata.version("panelflow")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


def build_parser() -> Parser:
    parser = Parser(
        prog="panelflow",
        description="panelflow admin command line. Configuration comes from PANELFLOW_* environment variables.",
    )
    parser.add_argument("--version", action="version", version=f"panelflow {_version()}")
    commands = parser.add_subparsers(title="commands", metavar="<command>", required=True, parser_class=Parser)
    for name in GROUPS:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        print(f"panelflow: error: bad setting PANELFLOW_{where.upper()}: {first['msg']}", file=sys.stderr)
        return 1
    # Library and use-case log lines go to stderr, so stdout carries only the command's result.
    configure_logging(settings, "cli")
    handler: Handler = args.handler
    try:
        return asyncio.run(handler(args, settings))
    except (CommandError, SecretBoxError) as exc:
        # SecretBoxError: an encryption key missing (outside development) or wrong; its message says which.
        print(f"panelflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
