"""What every `panelflow` command group shares: the handler shape, user-facing errors, argument types and the
database connection.

A command is an async handler `(args, settings) -> exit code`, attached with `parser.set_defaults(handler=...)`.
Raise `CommandError` for anything the operator can fix (bad input, unknown id, service down): `main` prints it
as one line on stderr and exits 1. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import re
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.db.pool import connect, database_name
from shared.domain.money import parse_amount, quantize
from shared.settings import Settings

Handler: TypeAlias = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]
# The object `add_subparsers()` returns; command groups add their parsers to it.
Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"


class CommandError(Exception):
    """An operator mistake or an unavailable dependency: printed as one line, exit status 1."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`panelflow account create: error: ...`) instead of usage dumps."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def group(commands: Subparsers, name: str, help: str) -> Subparsers:
    """Add a command group (`panelflow <name> <command>`) and return its sub-command table."""
    parser = commands.add_parser(name, help=help, description=help)
    sub = parser.add_subparsers(title="commands", metavar="<command>", required=True, parser_class=Parser)
    return sub


def command(commands: Subparsers, name: str, help: str, handler: Handler) -> Parser:
    parser: Parser = commands.add_parser(name, help=help, description=help)
    parser.set_defaults(handler=handler)
    return parser


# --- argument types: each raises ArgumentTypeError with a message the operator understands ------------------


def amount(text: str) -> Decimal:
    """A positive money amount with at most 5 decimal places."""
    try:
        return parse_amount(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def non_negative_amount(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"not a decimal amount: {text!r}") from exc
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"amount must not be negative: {text!r}")
    if quantize(value) != value:
        raise argparse.ArgumentTypeError(f"amount has more than 5 decimal places: {text!r}")
    return value


def positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def non_negative_int(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(text)


def span(unit: str, *, zero: bool = False) -> Callable[[str], float]:
    """A number of `unit`s (days, hours): finite, above 0 (or 0 too, with `zero`)."""
    wanted = f"a number of {unit}, 0 or more" if zero else f"a positive number of {unit}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected a number of {unit}") from exc
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            raise argparse.ArgumentTypeError(f"expected {wanted}")
        return value

    return parse


def per_minute(text: str) -> int:
    """`600/min` or `600`: requests per minute."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:/\s*min)?\s*", text)
    if match is None or int(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a rate like 600/min, got {text!r}")
    return int(match.group(1))


def cidr_list(text: str) -> list[str]:
    networks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=True)))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not an IP address or CIDR network: {item!r} ({exc})") from exc
    if not networks:
        raise argparse.ArgumentTypeError("expected a comma-separated list of IP addresses or CIDR networks")
    return networks


def http_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    return text.strip()


# --- secrets: from a file or stdin, never from the command line (it shows in `ps` and shell history) ----------


def secret_from(path: str) -> str:
    """A secret read from the file at `path`, or from stdin for `-`: one line, surrounding whitespace stripped."""
    where = "stdin" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read {where}: {getattr(exc, 'strerror', None) or exc}") from exc
    secret = text.strip()
    if not secret:
        raise argparse.ArgumentTypeError(f"{where} holds no secret")
    if any(c in secret for c in "\r\n"):
        raise argparse.ArgumentTypeError(f"{where} must hold the secret on one line")
    return secret


class _RefusedSecret(argparse.Action):
    """An option that would carry a secret on the command line: refused, naming the file option to use."""

    def __init__(self, option_strings: list[str], dest: str, instead: str, **kwargs: Any) -> None:
        self.instead = instead
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        parser.error(
            f"{self.option_strings[0]} is refused (a secret on the command line shows in `ps` and shell history):"
            f" use {self.instead} PATH, or {self.instead} - to read it from stdin"
        )


def secret_option(parser: Parser, name: str, help: str) -> None:
    """`--<name>-file PATH` (`-` = stdin), required, into `args.<name>`; `--<name>` itself is refused."""
    file_option = f"--{name}-file"
    parser.add_argument(
        file_option, type=secret_from, required=True, dest=name, metavar="PATH", help=f"{help}; - reads stdin"
    )
    parser.add_argument(f"--{name}", action=_RefusedSecret, instead=file_option, help=argparse.SUPPRESS)


# --- database ------------------------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def database_error(settings: Settings, exc: BaseException) -> CommandError:
    """Turn a failure to reach the database into the one line an operator needs."""
    url = redact_url(settings.database_url)
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        name = database_name(settings.database_url)
        return CommandError(f"database {name!r} does not exist: run `panelflow migrate` first")
    if isinstance(exc, asyncpg.UndefinedTableError):
        return CommandError(f"the database is not migrated ({exc}): run `panelflow migrate` first")
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError):
        return CommandError(f"the database refused the login at {url}: {exc}")
    reason = (str(exc).splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, asyncpg.PostgresError):
        return CommandError(f"the database at {url} refused: {reason}")
    return CommandError(f"cannot reach the database at {url} (PANELFLOW_DATABASE_URL): {reason}")


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """One connection for one command; unreachable or unmigrated databases become `CommandError`s."""
    try:
        conn = await connect(settings)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise database_error(settings, exc) from exc
    try:
        yield conn
    except asyncpg.UndefinedTableError as exc:
        raise database_error(settings, exc) from exc
    finally:
        await conn.close()
