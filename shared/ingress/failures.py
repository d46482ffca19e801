"""Which failures mean "the database is unavailable" (a 503 the client may retry) rather than our bug (a 500)."""

from __future__ import annotations

import asyncpg

# Connection refused/reset, pool acquire timeout, server shutting down or refusing connections.
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    # A connection the server dropped, met before asyncpg noticed: "connection is closed", "released back to the
    # pool", or a protocol state error such as "another operation is in progress" on a connection whose
    # server's FATAL was read but whose socket had not closed yet. During an outage these are the outage.
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


def database_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, DATABASE_DOWN)
