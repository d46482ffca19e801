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
)


def database_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, DATABASE_DOWN)
