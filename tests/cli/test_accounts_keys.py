"""`panelflow account ...` and `panelflow key ...`: each happy path checked in the database, each mistake refused."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import asyncpg

from shared.auth.keys import hash_key, key_prefix
from tests.cli.conftest import Cli


def email() -> str:
    return f"cli-{uuid.uuid4().hex[:12]}@example.test"


async def test_account_create_prints_id_and_books_opening_balance(cli: Cli, pool: asyncpg.Pool) -> None:
    address = email()
    result = cli("account", "create", "--email", address, "--balance", "12.5", "--tier", "reseller")
    assert result.code == 0, result
    account_id = int(result.out)
    row = await pool.fetchrow("SELECT email, balance, tier, status FROM accounts WHERE id = $1", account_id)
    assert row is not None
    assert (row["email"], row["balance"], row["tier"], row["status"]) == (
        address,
        Decimal("12.5"),
        "reseller",
        "active",
    )
    ledger = await pool.fetchval("SELECT sum(amount) FROM ledger WHERE account_id = $1", account_id)
    assert ledger == Decimal("12.5")


def test_account_create_mistakes(cli: Cli) -> None:
    address = email()
    assert cli("account", "create", "--email", address).code == 0
    cli("account", "create", "--email", address).assert_user_error(says="already exists")
    cli("account", "create", "--email", "not-an-email").assert_user_error(says="not an email")
    cli("account", "create", "--email", email(), "--tier", "gold").assert_user_error(says="unknown tier")
    cli("account", "create", "--email", email(), "--balance", "-3").assert_user_error(code=2, says="--balance")
    cli("account", "create", "--email", email(), "--balance", "1.123456").assert_user_error(code=2, says="5 decimal")
    cli("account", "create").assert_user_error(code=2, says="--email")


async def test_account_topup_suspend_resume(cli: Cli, pool: asyncpg.Pool) -> None:
    account_id = int(cli("account", "create", "--email", email(), "--balance", "1").out)
    result = cli("account", "topup", "--account", str(account_id), "--amount", "2.25")
    assert (result.code, result.out.strip()) == (0, "3.25")
    assert await pool.fetchval("SELECT balance FROM accounts WHERE id = $1", account_id) == Decimal("3.25")
    kinds = await pool.fetch("SELECT kind, amount FROM ledger WHERE account_id = $1 ORDER BY id", account_id)
    assert [(r["kind"], r["amount"]) for r in kinds] == [("topup", Decimal("1")), ("topup", Decimal("2.25"))]

    assert cli("account", "suspend", "--account", str(account_id)).code == 0
    assert await pool.fetchval("SELECT status FROM accounts WHERE id = $1", account_id) == "suspended"
    assert cli("account", "resume", "--account", str(account_id)).code == 0
    assert await pool.fetchval("SELECT status FROM accounts WHERE id = $1", account_id) == "active"

    shown = cli("account", "show", "--account", str(account_id))
    assert shown.code == 0
    fields = dict(line.split(None, 1) for line in shown.out.splitlines())
    assert fields["balance"] == "3.25"
    assert fields["status"] == "active"


def test_account_topup_and_status_mistakes(cli: Cli) -> None:
    cli("account", "topup", "--account", "999999999", "--amount", "1").assert_user_error(says="not found")
    cli("account", "topup", "--account", "1", "--amount", "0").assert_user_error(code=2, says="positive")
    cli("account", "topup", "--account", "1", "--amount", "abc").assert_user_error(code=2, says="not a decimal")
    cli("account", "topup", "--account", "x1", "--amount", "1").assert_user_error(code=2, says="--account")
    cli("account", "suspend", "--account", "999999999").assert_user_error(says="not found")
    cli("account", "resume", "--account", "999999999").assert_user_error(says="not found")
    cli("account", "show", "--account", "999999999").assert_user_error(says="not found")


async def test_key_create_stores_only_the_hash_with_its_options(cli: Cli, pool: asyncpg.Pool) -> None:
    account_id = int(cli("account", "create", "--email", email()).out)
    result = cli(
        "key", "create", "--account", str(account_id), "--scopes", "read,orders",
        "--allow-ip", "10.0.0.0/8,192.0.2.7", "--rate-limit", "60/min",
    )  # fmt: skip
    assert result.code == 0, result
    key = result.out.strip()
    row = await pool.fetchrow(
        "SELECT account_id, prefix, scopes, allow_ips::text[] AS ips, rate_limit_per_min FROM api_keys "
        "WHERE key_hash = $1",
        hash_key(key),
    )
    assert row is not None
    assert row["account_id"] == account_id
    assert row["prefix"] == key_prefix(key)
    assert sorted(row["scopes"]) == ["orders", "read"]
    assert row["ips"] == ["10.0.0.0/8", "192.0.2.7/32"]
    assert row["rate_limit_per_min"] == 60
    assert await pool.fetchval("SELECT count(*) FROM api_keys WHERE prefix = $1 AND key_hash <> $2", key, b"") == 0


async def test_key_revoke(cli: Cli, pool: asyncpg.Pool) -> None:
    account_id = int(cli("account", "create", "--email", email()).out)
    key = cli("key", "create", "--account", str(account_id)).out.strip()
    assert cli("key", "revoke", "--prefix", key_prefix(key)).code == 0
    assert await pool.fetchval("SELECT revoked_at IS NOT NULL FROM api_keys WHERE key_hash = $1", hash_key(key))
    # Revoking twice is a mistake: nothing active has that prefix any more.
    cli("key", "revoke", "--prefix", key_prefix(key)).assert_user_error(says="no active key")


def test_key_mistakes(cli: Cli) -> None:
    cli("key", "create", "--account", "999999999").assert_user_error(says="not found")
    cli("key", "create", "--account", "1", "--scopes", "admin").assert_user_error(says="scopes")
    cli("key", "create", "--account", "1", "--allow-ip", "10.0.0.1/8").assert_user_error(code=2, says="CIDR")
    cli("key", "create", "--account", "1", "--allow-ip", "nonsense").assert_user_error(code=2, says="CIDR")
    cli("key", "create", "--account", "1", "--rate-limit", "fast").assert_user_error(code=2, says="600/min")
    cli("key", "revoke", "--prefix", "pf_nothing").assert_user_error(says="no active key")


async def test_key_profiles_created_listed_and_changed(cli: Cli, pool: asyncpg.Pool) -> None:
    account_id = int(cli("account", "create", "--email", email()).out)
    strict = cli("key", "create", "--account", str(account_id)).out.strip()
    classic = cli("key", "create", "--account", str(account_id), "--profile", "classic").out.strip()
    profiles = "SELECT profile FROM api_keys WHERE key_hash = $1"
    assert await pool.fetchval(profiles, hash_key(strict)) == "strict"  # the default: today's behaviour
    assert await pool.fetchval(profiles, hash_key(classic)) == "classic"
    listed = cli("key", "list", "--account", str(account_id))
    assert listed.code == 0, listed
    header, *lines = listed.out.strip().splitlines()
    assert header.split() == [
        "PREFIX",
        "ACCOUNT",
        "PROFILE",
        "STATE",
        "SCOPES",
        "ALLOW_IPS",
        "RATE_LIMIT",
        "LAST_USED_AT",
    ]
    assert len(lines) == 2
    assert key_prefix(strict) in lines[0]
    assert " strict " in lines[0]
    assert key_prefix(classic) in lines[1]
    assert " classic " in lines[1]
    assert strict not in listed.out
    assert classic not in listed.out
    changed = cli("key", "set-profile", "--prefix", key_prefix(strict), "--profile", "classic")
    assert changed.code == 0, changed
    assert await pool.fetchval(profiles, hash_key(strict)) == "classic"
    as_json = cli("key", "list", "--account", str(account_id), "--json")
    assert [json.loads(line)["profile"] for line in as_json.out.splitlines()] == ["classic", "classic"]


def test_key_profile_mistakes(cli: Cli) -> None:
    cli("key", "create", "--account", "1", "--profile", "lenient").assert_user_error(code=2, says="profile")
    cli("key", "set-profile", "--prefix", "pf_nothing", "--profile", "classic").assert_user_error(says="no active key")
    cli("key", "set-profile", "--prefix", "pf_nothing", "--profile", "x").assert_user_error(code=2, says="profile")
