"""`panelflow provider add|set-key|encrypt-keys` and `panelflow migrate` keep our provider keys encrypted."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg

from shared.catalog import providers
from shared.db import providers as provider_sql
from shared.db.migrate import available
from shared.db.pool import ensure_database
from shared.settings import Settings
from tests.catalog.test_provider_keys import tables_holding
from tests.cli.conftest import Cli, run_cli
from tests.support.factories import provider_box

ENCRYPTION_MIGRATION = 6


async def test_provider_keys_given_to_the_cli_are_stored_encrypted(
    cli: Cli, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    key, replaced = f"cli-key-{uuid.uuid4().hex}", f"cli-key-{uuid.uuid4().hex}"
    added = cli("provider", "add", "--name", f"p-{uuid.uuid4().hex[:8]}", "--url", "https://up.example/api/v2",
                "--key-file", "-", stdin=f"{key}\n")  # fmt: skip
    assert added.code == 0, added
    assert key not in added.out + added.err
    provider_id = int(added.out)
    async with pool.acquire() as conn:
        assert await tables_holding(conn, key) == []
        row = await provider_sql.get_provider(conn, provider_id)
        assert row is not None
        assert providers.provider_key(provider_box(), row) == key

    key_file = tmp_path / "key"
    key_file.write_text(f"  {replaced}\n")
    changed = cli("provider", "set-key", "--provider", str(provider_id), "--key-file", str(key_file))
    assert (changed.code, changed.out.strip()) == (0, f"provider {provider_id}: key replaced"), changed
    async with pool.acquire() as conn:
        assert await tables_holding(conn, replaced) == []
        row = await provider_sql.get_provider(conn, provider_id)
        assert row is not None
        assert providers.provider_key(provider_box(), row) == replaced
    cli("provider", "set-key", "--provider", "987654321", "--key-file", "-", stdin="k").assert_user_error(
        says="not found"
    )

    rotated = cli("provider", "encrypt-keys")
    assert rotated.code == 0, rotated
    assert rotated.out.startswith("encrypted 0, re-encrypted "), rotated.out
    async with pool.acquire() as conn:
        row = await provider_sql.get_provider(conn, provider_id)
        assert row is not None
        assert providers.provider_key(provider_box(), row) == replaced


async def test_a_key_on_the_command_line_is_refused_and_a_bad_key_file_is_one_clear_line(
    cli: Cli, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    name = f"p-{uuid.uuid4().hex[:8]}"
    add = ["provider", "add", "--name", name, "--url", "https://up.example/api/v2"]
    refused = cli(*add, "--key", "visible-in-ps")
    refused.assert_user_error(code=2, says="--key is refused")
    assert "use --key-file PATH, or --key-file - to read it from stdin" in refused.err
    assert "visible-in-ps" not in refused.err
    cli("provider", "set-key", "--provider", "1", "--key", "k").assert_user_error(code=2, says="--key is refused")
    cli(*add).assert_user_error(code=2, says="--key-file")
    cli(*add, "--key-file", "-", stdin=" \n").assert_user_error(code=2, says="stdin holds no secret")
    cli(*add, "--key-file", "-", stdin="a\nb\n").assert_user_error(code=2, says="on one line")
    missing = tmp_path / "missing"
    cli(*add, "--key-file", str(missing)).assert_user_error(code=2, says=f"cannot read {missing}")
    assert await pool.fetchval("SELECT count(*) FROM providers WHERE name = $1", name) == 0


async def test_outside_development_the_provider_commands_need_the_encryption_key(cli: Cli, pool: asyncpg.Pool) -> None:
    name = f"p-{uuid.uuid4().hex[:8]}"
    production = {"PANELFLOW_ENV": "production", "PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY": ""}
    cli(
        "provider", "add", "--name", name, "--url", "https://up.example/api/v2", "--key-file", "-", stdin="k",
        **production,
    ).assert_user_error(says="PROVIDER_KEY_ENCRYPTION_KEY is not set: it is required outside development")  # fmt: skip
    cli("provider", "encrypt-keys", **production).assert_user_error(says="is not set")
    assert await pool.fetchval("SELECT count(*) FROM providers WHERE name = $1", name) == 0


async def test_a_wrong_encryption_key_is_one_clear_line(cli: Cli) -> None:
    cli("provider", "encrypt-keys", PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY="nonsense").assert_user_error(
        says="PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY is not a list of Fernet keys"
    )


async def test_migrate_encrypts_the_plaintext_keys_of_an_older_database(fresh_settings: Settings) -> None:
    # A database as the release before migration 006 left it, with a provider whose key is in plaintext.
    key = f"old-key-{uuid.uuid4().hex}"
    await ensure_database(fresh_settings.database_url)
    conn = await asyncpg.connect(fresh_settings.database_url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for migration in available():
            if migration.version < ENCRYPTION_MIGRATION:
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name
                )
        await conn.execute(
            "INSERT INTO providers (name, url, api_key) VALUES ('old', 'https://up.example/api/v2', $1)", key
        )

        upgraded = run_cli(fresh_settings, "migrate")
        assert upgraded.code == 0, upgraded
        newer = [f"{m.version:03d}" for m in available() if m.version >= ENCRYPTION_MIGRATION]
        assert upgraded.out.splitlines() == [f"applied migrations: {', '.join(newer)}", "encrypted 1 provider keys"]
        assert key not in upgraded.out + upgraded.err
        assert await tables_holding(conn, key) == []
        row = await provider_sql.get_provider(conn, await conn.fetchval("SELECT id FROM providers WHERE name = 'old'"))
        assert row is not None
        assert row.legacy_api_key is None
        assert providers.provider_key(provider_box(), row) == key

        again = run_cli(fresh_settings, "migrate")
        assert (again.code, again.out.strip()) == (0, "database is up to date")
    finally:
        await conn.close()


def test_demo_seed_outside_development_without_the_keys_is_one_clear_line(cli: Cli, tmp_path: Path) -> None:
    key_file = tmp_path / "demo-key"
    cli(
        "demo", "seed", "--key-file", str(key_file),
        PANELFLOW_ENV="production", PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY="", PANELFLOW_WEBHOOK_SECRET_KEY="",
    ).assert_user_error(says="is not set: it is required outside development")  # fmt: skip
    assert not key_file.exists()
