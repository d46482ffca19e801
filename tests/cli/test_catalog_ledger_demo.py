"""`panelflow provider|service add`, `ledger check`, `demo seed`, and the command line's own failure modes."""

from __future__ import annotations

import json
import stat
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg

from shared.auth.keys import hash_key, key_prefix
from shared.demo import DEMO_BALANCE, DEMO_EMAIL
from shared.settings import Settings
from shared.webhooks.secretbox import SecretBox
from tests.cli.conftest import Cli, run_cli


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_provider_and_service_add(cli: Cli, pool: asyncpg.Pool) -> None:
    name = unique("upstream")
    provider = cli(
        "provider", "add", "--name", name, "--url", "https://up.example/api/v2", "--key-file", "-", stdin="k1"
    )
    assert provider.code == 0, provider
    provider_id = int(provider.out)
    assert await pool.fetchval("SELECT url FROM providers WHERE id = $1", provider_id) == "https://up.example/api/v2"
    result = cli(
        "service", "add", "--name", "Likes", "--type", "Default", "--rate", "0.75", "--min", "10", "--max", "500",
        "--category", "Cat", "--refill", "--dripfeed", "--provider", str(provider_id), "--provider-service", "77",
        "--cost-rate", "0.5",
    )  # fmt: skip
    assert result.code == 0, result
    row = await pool.fetchrow("SELECT * FROM services WHERE id = $1", int(result.out))
    assert row is not None
    assert (row["type"], row["rate"], row["cost_rate"], row["min_quantity"], row["max_quantity"]) == (
        "Default", Decimal("0.75"), Decimal("0.5"), 10, 500,
    )  # fmt: skip
    assert (row["refill"], row["cancel"], row["dripfeed"], row["category"]) == (True, False, True, "Cat")
    assert (row["provider_id"], row["provider_service_id"]) == (provider_id, "77")

    cli(
        "provider", "add", "--name", name, "--url", "https://x.example", "--key-file", "-", stdin="k"
    ).assert_user_error(says="already exists")
    cli(
        "service", "add", "--name", "Again", "--type", "Default", "--rate", "1", "--min", "1", "--max", "2",
        "--provider", str(provider_id), "--provider-service", "77",
    ).assert_user_error(says="already in the catalog")  # fmt: skip


async def test_provider_idempotent_flag_set_and_listed(cli: Cli, pool: asyncpg.Pool) -> None:
    plain = int(
        cli(
            "provider",
            "add",
            "--name",
            unique("plain"),
            "--url",
            "https://a.example/api/v2",
            "--key-file",
            "-",
            stdin="k",
        ).out
    )
    honours = cli("provider", "add", "--name", unique("idem"), "--url", "https://b.example/api/v2",
                  "--key-file", "-", "--idempotent", stdin="k")  # fmt: skip
    assert honours.code == 0, honours
    idem = int(honours.out)

    async def flag(provider_id: int) -> bool:
        return bool(await pool.fetchval("SELECT idempotent FROM providers WHERE id = $1", provider_id))

    assert (await flag(plain), await flag(idem)) == (False, True)
    listed = cli("provider", "list", "--json")
    assert listed.code == 0, listed
    rows = {row["provider"]: row for row in map(json.loads, listed.out.splitlines())}
    assert (rows[plain]["idempotent"], rows[idem]["idempotent"]) == (False, True)
    assert "key" not in json.dumps(rows[idem])  # the listing never shows our key
    lines = {line.split()[1]: line for line in cli("provider", "list").out.splitlines()}
    assert "idempotent" in lines[str(idem)]
    assert "idempotent" not in lines[str(plain)]

    turned = cli("provider", "set", "--provider", str(plain), "--idempotent")
    assert (turned.code, turned.out.strip()) == (0, f"provider {plain}: idempotent"), turned
    assert cli("provider", "set", "--provider", str(idem), "--no-idempotent").code == 0
    assert (await flag(plain), await flag(idem)) == (True, False)
    cli("provider", "set", "--provider", "999999999", "--idempotent").assert_user_error(says="not found")
    cli("provider", "set", "--provider", str(plain)).assert_user_error(code=2, says="--idempotent")
    cli("provider", "set", "--provider", str(plain), "--idempotent", "--no-idempotent").assert_user_error(
        code=2, says="not allowed"
    )


def test_catalog_mistakes(cli: Cli) -> None:
    base = ["service", "add", "--name", "S", "--rate", "1", "--min", "1", "--max", "10"]
    cli(*base, "--type", "Followers").assert_user_error(says="unknown type")
    cli(
        "service", "add", "--name", "S", "--type", "Default", "--rate", "1", "--min", "20", "--max", "10"
    ).assert_user_error(says="must not exceed")
    cli(*base, "--type", "Default", "--provider", "999999999", "--provider-service", "1").assert_user_error(
        says="provider 999999999 not found"
    )
    cli(*base, "--type", "Default", "--provider", "1").assert_user_error(says="go together")
    cli(*base, "--type", "Package", "--dripfeed").assert_user_error(says="Default services only")
    cli(*base, "--type", "Default", "--rate", "-1").assert_user_error(code=2, says="negative")
    cli("provider", "add", "--name", "p", "--url", "ftp://x", "--key-file", "-", stdin="k").assert_user_error(
        code=2, says="http"
    )


async def test_ledger_check_clean_then_dirty(fresh_settings: Settings, pool: asyncpg.Pool) -> None:
    # A database of its own: other tests' accounts cannot make this one pass or fail.
    assert run_cli(fresh_settings, "migrate").code == 0
    first = int(run_cli(fresh_settings, "account", "create", "--email", "a@x.test", "--balance", "5").out)
    second = int(run_cli(fresh_settings, "account", "create", "--email", "b@x.test", "--balance", "7").out)
    assert run_cli(fresh_settings, "account", "topup", "--account", str(first), "--amount", "1").code == 0
    clean = run_cli(fresh_settings, "ledger", "check")
    assert clean.code == 0, clean
    assert "ledger ok: 2 accounts" in clean.out

    conn = await asyncpg.connect(fresh_settings.database_url)
    try:
        await conn.execute("UPDATE accounts SET balance = balance + 1 WHERE id = $1", second)
    finally:
        await conn.close()
    dirty = run_cli(fresh_settings, "ledger", "check")
    assert dirty.code == 1, dirty
    assert f"account {second}: balance 8.00000 ledger sum 7.00000" in dirty.out
    assert f"account {first}:" not in dirty.out
    assert "Traceback" not in dirty.err


async def test_demo_seed_is_idempotent_and_keeps_its_key(cli: Cli, pool: asyncpg.Pool, tmp_path: Path) -> None:
    key_file = tmp_path / "demo-key"
    first = cli("demo", "seed", "--key-file", str(key_file))
    assert first.code == 0, first
    values = dict(line.split("=", 1) for line in first.out.splitlines())
    assert set(values) == {
        "PANELFLOW_DEMO_ACCOUNT", "PANELFLOW_DEMO_KEY", "PANELFLOW_DEMO_SERVICE",
        "PANELFLOW_DEMO_WEBHOOK", "PANELFLOW_DEMO_WEBHOOK_URL", "PANELFLOW_DEMO_WEBHOOK_SECRET",
    }  # fmt: skip
    key = values["PANELFLOW_DEMO_KEY"]
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    account = await pool.fetchrow("SELECT id, balance FROM accounts WHERE email = $1", DEMO_EMAIL)
    assert account is not None
    assert account["id"] == int(values["PANELFLOW_DEMO_ACCOUNT"])
    assert account["balance"] >= DEMO_BALANCE
    assert await pool.fetchval("SELECT account_id FROM api_keys WHERE key_hash = $1", hash_key(key)) == account["id"]
    service = await pool.fetchrow(
        "SELECT type, provider_id FROM services WHERE id = $1", int(values["PANELFLOW_DEMO_SERVICE"])
    )
    assert service is not None
    assert service["type"] == "Default"
    assert service["provider_id"] is not None
    # The simulator honours request_id (PANELFLOW_SIM_IDEMPOTENT, default true): so is its provider row marked.
    assert await pool.fetchval("SELECT idempotent FROM providers WHERE id = $1", service["provider_id"]) is True
    counts = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM services WHERE category = 'Demo') AS services,"
        " (SELECT count(*) FROM api_keys WHERE account_id = $1) AS keys",
        account["id"],
    )
    assert counts is not None

    again = cli("demo", "seed", "--key-file", str(key_file))
    assert again.out == first.out
    assert (
        await pool.fetchrow(
            "SELECT (SELECT count(*) FROM services WHERE category = 'Demo') AS services,"
            " (SELECT count(*) FROM api_keys WHERE account_id = $1) AS keys",
            account["id"],
        )
        == counts
    )

    # A revoked demo key is replaced by a fresh one, written to the key file.
    assert cli("key", "revoke", "--prefix", key_prefix(key)).code == 0
    renewed = cli("demo", "seed", "--key-file", str(key_file))
    new_key = dict(line.split("=", 1) for line in renewed.out.splitlines())["PANELFLOW_DEMO_KEY"]
    assert new_key != key
    assert key_file.read_text().strip() == new_key


async def test_demo_seed_registers_the_local_webhook_once(
    cli: Cli, settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    key_file = tmp_path / "demo-key"
    first = cli("demo", "seed", "--key-file", str(key_file))
    assert first.code == 0, first
    values = dict(line.split("=", 1) for line in first.out.splitlines())
    account_id = int(values["PANELFLOW_DEMO_ACCOUNT"])
    assert values["PANELFLOW_DEMO_WEBHOOK_URL"] == f"http://127.0.0.1:{settings.demo_webhook_port}/demo-webhooks"
    assert not settings.webhooks_allow_http  # registered although plain http stays refused by default

    async def demo_endpoints() -> list[asyncpg.Record]:
        return await pool.fetch(
            "SELECT id, url, events, enabled, secret_enc FROM webhook_endpoints WHERE account_id = $1", account_id
        )

    [endpoint] = await demo_endpoints()
    assert endpoint["id"] == int(values["PANELFLOW_DEMO_WEBHOOK"])
    assert endpoint["url"] == values["PANELFLOW_DEMO_WEBHOOK_URL"]
    assert {"order.status_changed", "order.completed"} <= set(endpoint["events"])
    # The secret handed to the receiver is the one deliveries are signed with.
    secret = values["PANELFLOW_DEMO_WEBHOOK_SECRET"]
    assert secret.startswith("whsec_")
    assert SecretBox(settings).decrypt(endpoint["secret_enc"]) == secret

    # A disabled demo webhook is enabled again, same id and secret.
    await pool.execute(
        "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = 'x' WHERE id = $1", endpoint["id"]
    )
    assert cli("demo", "seed", "--key-file", str(key_file)).out == first.out
    assert [(e["id"], e["enabled"]) for e in await demo_endpoints()] == [(endpoint["id"], True)]

    # Another receiver port: the old demo webhook is replaced, not kept collecting failures.
    moved = cli("demo", "seed", "--key-file", str(key_file), PANELFLOW_DEMO_WEBHOOK_PORT="8111")
    assert moved.code == 0, moved
    moved_values = dict(line.split("=", 1) for line in moved.out.splitlines())
    [replaced] = await demo_endpoints()
    assert replaced["url"] == "http://127.0.0.1:8111/demo-webhooks" == moved_values["PANELFLOW_DEMO_WEBHOOK_URL"]
    assert replaced["id"] != endpoint["id"]
    assert moved_values["PANELFLOW_DEMO_WEBHOOK_SECRET"] != secret


async def test_demo_seed_writes_the_webhook_secret_for_a_receiver_on_another_host(
    cli: Cli, settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """As the compose stack seeds it: the receiver is a service of its own, named in the webhook's URL, whose
    network is allowed explicitly; it reads the secret from the file the seed writes."""
    secret_file = tmp_path / "demo" / "webhook-secret"
    seeded = cli(
        "demo", "seed", "--key-file", str(tmp_path / "demo" / "key"), "--webhook-secret-file", str(secret_file),
        PANELFLOW_DEMO_WEBHOOK_HOST="localhost", PANELFLOW_DEMO_WEBHOOK_PORT="8112",
        PANELFLOW_WEBHOOKS_ALLOWED_NETWORKS="127.0.0.0/8,::1/128",
    )  # fmt: skip
    assert seeded.code == 0, seeded
    values = dict(line.split("=", 1) for line in seeded.out.splitlines())
    assert values["PANELFLOW_DEMO_WEBHOOK_URL"] == "http://localhost:8112/demo-webhooks"
    url = await pool.fetchval("SELECT url FROM webhook_endpoints WHERE id = $1", int(values["PANELFLOW_DEMO_WEBHOOK"]))
    assert url == values["PANELFLOW_DEMO_WEBHOOK_URL"]
    assert secret_file.read_text() == values["PANELFLOW_DEMO_WEBHOOK_SECRET"] + "\n"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in secret_file.parent.iterdir() if p.name.endswith(".partial")] == []
    # Seeding again keeps the webhook and its secret (what the running receiver verifies with).
    again = cli(
        "demo", "seed", "--key-file", str(tmp_path / "demo" / "key"), "--webhook-secret-file", str(secret_file),
        PANELFLOW_DEMO_WEBHOOK_HOST="localhost", PANELFLOW_DEMO_WEBHOOK_PORT="8112",
        PANELFLOW_WEBHOOKS_ALLOWED_NETWORKS="127.0.0.0/8,::1/128",
    )  # fmt: skip
    assert again.out == seeded.out
    assert secret_file.read_text() == values["PANELFLOW_DEMO_WEBHOOK_SECRET"] + "\n"


def test_help_lists_every_group(cli: Cli) -> None:
    result = cli("--help")
    assert result.code == 0
    for group in ("migrate", "account", "key", "provider", "service", "ledger", "demo"):
        assert f"    {group} " in result.out


def test_unknown_command_and_unreachable_database(cli: Cli) -> None:
    cli("frobnicate").assert_user_error(code=2, says="invalid choice")
    cli("ledger", "check", PANELFLOW_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nothing").assert_user_error(
        says="cannot reach the database"
    )
    cli("ledger", "check", PANELFLOW_DB_POOL_MAX="many").assert_user_error(says="PANELFLOW_DB_POOL_MAX")


async def test_a_service_charging_nothing_for_its_minimum_is_refused(cli: Cli, pool: asyncpg.Pool) -> None:
    name = unique("cheap")
    base = ["service", "add", "--name", name, "--type", "Default", "--max", "1000"]
    cli(*base, "--rate", "0.001", "--min", "4").assert_user_error(
        says="--rate 0.001 would charge less than 0.00001 for --min 4 (every order costs at least 0.00001): "
        "raise --rate, or --min to at least 5"
    )
    cli(*base, "--rate", "0", "--min", "10").assert_user_error(says="raise --rate")
    cli("service", "add", "--name", name, "--type", "Package", "--rate", "0", "--min", "1", "--max", "1"
        ).assert_user_error(says="would charge less than 0.00001")  # fmt: skip
    assert await pool.fetchval("SELECT count(*) FROM services WHERE name = $1", name) == 0
    added = cli(*base, "--rate", "0.001", "--min", "5")
    assert added.code == 0, added
    assert await pool.fetchval("SELECT rate FROM services WHERE id = $1", int(added.out)) == Decimal("0.001")
