"""Database (Postgres)."""

from __future__ import annotations

from pydantic import BaseModel

from shared.settings.field import setting


class Database(BaseModel):
    """Database (Postgres)

    Postgres holds everything that matters (orders, balances, the ledger, webhooks, the outbox): it is the one
    thing to back up (docs/operations.md).
    """

    database_url: str = setting(
        "postgresql://postgres@127.0.0.1:5432/panelflow",
        meaning="The Postgres database every process and command uses; `panelflow migrate` creates it when "
        "missing. Put the password here or in `PGPASSWORD`/`~/.pgpass`.",
        type="URL (`postgresql://user:password@host:port/database`)",
    )
    db_pool_min: int = setting(
        2,
        meaning="Connections each process keeps open to Postgres even when idle.",
        type="integer",
        unit="connections",
    )
    db_pool_max: int = setting(
        10,
        meaning="Most connections one process opens to Postgres. Every process (each api process, worker, "
        "webhooks, relay) has its own pool: keep the sum under Postgres's `max_connections` (or the pooler's), "
        "or new connections are refused under load.",
        type="integer",
        unit="connections",
    )
    db_statement_cache_size: int = setting(
        100,
        meaning="Prepared statements cached per connection. Set 0 behind PgBouncer in transaction pooling mode "
        "(prepared statements do not survive it: queries fail with `prepared statement does not exist`).",
        type="integer",
        unit="statements",
    )
    db_acquire_timeout_s: float = setting(
        5.0,
        meaning="How long an api request waits for a free pooled connection before it answers 503; raise "
        "`db_pool_max` rather than this when it happens under normal load.",
        type="number",
        unit="seconds",
    )
