"""Do Postgres, RabbitMQ and Redis answer at the configured URLs? Used by `scripts/ensure-services.sh`.

`python -m shared.cli.probe [postgres|rabbitmq|redis ...]` prints one line per service,
`<name> <state> <host> <port> <user> <detail>`, where state is `ok`, `down` (nothing answers: start or install it),
`auth` (it answers but refuses our login) or `error`; exit status 0 when every probed service is `ok`.
`python -m shared.cli.probe --urls` prints the parts of the three URLs as shell assignments instead.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiormq.exceptions
import asyncpg
import redis.asyncio as aioredis
import redis.exceptions

from shared.db.pool import with_database
from shared.messaging.connection import connect
from shared.settings import Settings

# PANELFLOW_REDIS_URL may be empty (rate limits in-process), but the tests of the shared Redis storage use
# the local one, so set-up makes sure this one answers then.
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Probe:
    name: str
    url: str
    default_port: int
    check: Callable[[str], Awaitable[None]]


async def _postgres(url: str) -> None:
    # The maintenance database: the panelflow database itself may not exist yet (`panelflow migrate` makes it).
    conn = await asyncpg.connect(with_database(url, "postgres"), timeout=TIMEOUT_S)
    await conn.close()


async def _rabbitmq(url: str) -> None:
    connection = await connect(url, timeout=TIMEOUT_S)
    await connection.close()


async def _redis(url: str) -> None:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S)
    try:
        await client.execute_command("PING")  # ping() is typed sync-or-async in redis-py 7
    finally:
        await client.aclose()


def probes(settings: Settings) -> list[Probe]:
    return [
        Probe("postgres", settings.database_url, 5432, _postgres),
        Probe("rabbitmq", settings.amqp_url, 5672, _rabbitmq),
        Probe("redis", settings.redis_url or LOCAL_REDIS_URL, 6379, _redis),
    ]


def classify(exc: BaseException) -> str:
    # Order matters: aiormq's authentication error is also a ConnectionError.
    if isinstance(
        exc,
        asyncpg.InvalidAuthorizationSpecificationError
        | asyncpg.InvalidPasswordError
        | aiormq.exceptions.ProbableAuthenticationError
        | redis.exceptions.AuthenticationError
        | redis.exceptions.AuthorizationError,
    ):
        return "auth"
    # asyncpg: "password is required" when the server asks for one and the URL has none.
    if isinstance(exc, asyncpg.ClientConfigurationError) and "password" in str(exc):
        return "auth"
    if isinstance(exc, OSError | TimeoutError | redis.exceptions.ConnectionError):
        return "down"
    return "error"


async def run(probe: Probe) -> str:
    parts = urlsplit(probe.url)
    where = f"{parts.hostname or '127.0.0.1'} {parts.port or probe.default_port} {parts.username or '-'}"
    try:
        await asyncio.wait_for(probe.check(probe.url), TIMEOUT_S + 1)
    except Exception as exc:
        detail = (str(exc).splitlines() or [type(exc).__name__])[0] or type(exc).__name__
        return f"{probe.name} {classify(exc)} {where} {detail}"
    return f"{probe.name} ok {where} -"


async def _main(names: list[str]) -> int:
    # The clients log their own connection failures; the one line per service says it all.
    logging.disable(logging.CRITICAL)
    selected = [p for p in probes(Settings()) if not names or p.name in names]
    lines = await asyncio.gather(*(run(p) for p in selected))
    print("\n".join(lines))
    return 0 if all(line.split()[1] == "ok" for line in lines) else 1


def shell_parts(probe: Probe) -> list[str]:
    """`<name>_host=...` etc. as shell assignments, percent-decoded and quoted, for `eval` in set-up scripts."""
    parts = urlsplit(probe.url)
    values = {
        "url": probe.url,
        "host": parts.hostname or "127.0.0.1",
        "port": str(parts.port or probe.default_port),
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "path": unquote(parts.path.lstrip("/")),
    }
    return [f"{probe.name}_{key}={shlex.quote(value)}" for key, value in values.items()]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--urls"]:
        for probe in probes(Settings()):
            print("\n".join(shell_parts(probe)))
        return 0
    return asyncio.run(_main(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
