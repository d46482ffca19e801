"""`panelflow account|service|orders list|show` and `--version`: the --json outputs parsed, the columns aligned,
money as the API's decimal strings, unknown ids one line on stderr."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from shared.auth.keys import key_prefix
from shared.ordering.placement import Placer
from shared.settings import Settings
from tests.cli.conftest import Cli
from tests.support.factories import make_account, make_key, make_provider, make_service
from tests.support.worker import place


@pytest.fixture
async def placer(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[Placer]:
    placer = Placer(pool, settings)
    await placer.start()
    yield placer
    await placer.close()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def assert_aligned(out: str) -> list[list[str]]:
    """Every column starts at the same offset on every line (the header's); returns the cells."""
    header, *rows = out.splitlines()
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    cells = []
    for row in rows:
        assert all(row[i - 1] == " " for i in starts[1:]), (header, row)
        cells.append([row[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)])
    return cells


async def test_orders_list_and_show(cli: Cli, pool: asyncpg.Pool, placer: Placer) -> None:
    account = await make_account(pool, balance="50")
    service = await make_service(pool, rate="2.50", min_quantity=10)
    ids = [
        await place(placer, pool, account_id=account, service_id=service, link=f"https://example.test/{n}",
                    quantity=quantity)
        for n, quantity in enumerate((100, 1000))
    ]  # fmt: skip

    listed = cli("orders", "list", "--account", str(account), "--json")
    assert listed.code == 0, listed
    records = json_lines(listed.out)
    assert [r["id"] for r in records] == sorted(ids, reverse=True)  # newest first
    assert [(r["status"], r["charge"], r["account_id"]) for r in records] == [
        ("pending", "2.50", account),
        ("pending", "0.25", account),
    ]
    assert cli("orders", "list", "--account", str(account), "--status", "completed", "--json").out == ""

    human = cli("orders", "list", "--account", str(account), "--status", "pending")
    assert human.code == 0, human
    cells = assert_aligned(human.out)
    assert [(int(c[0]), c[3], c[5]) for c in cells] == [(ids[1], "pending", "2.50"), (ids[0], "pending", "0.25")]

    shown = cli("orders", "show", "--order", str(ids[0]), "--json")
    order = json.loads(shown.out)
    assert (order["id"], order["service_id"], order["quantity"], order["refunded"]) == (ids[0], service, 100, "0.00")
    assert order["correlation_id"].startswith("test-")
    fields = dict(line.split(None, 1) for line in cli("orders", "show", "--order", str(ids[0])).out.splitlines())
    assert fields["charge"] == "0.25"
    cli("orders", "show", "--order", "999999999").assert_user_error(says="order 999999999 not found")
    cli("orders", "list", "--status", "lost").assert_user_error(code=2, says="--status")


async def test_accounts_and_services_list_and_show(cli: Cli, pool: asyncpg.Pool) -> None:
    account = await make_account(pool, balance="12.5")
    service = await make_service(pool, rate="0.90")

    accounts = json_lines(cli("account", "list", "--json").out)
    mine = next(a for a in accounts if a["id"] == account)
    assert (mine["balance"], mine["status"]) == ("12.50", "active")
    assert json.loads(cli("account", "show", "--account", str(account), "--json").out) == mine
    cells = assert_aligned(cli("account", "list").out)
    assert next(c for c in cells if c[0] == str(account))[2] == "12.50"

    services = json_lines(cli("service", "list", "--json").out)
    listed = next(s for s in services if s["id"] == service)
    assert (listed["rate"], listed["active"], listed["type"]) == ("0.90", True, "Default")
    assert json.loads(cli("service", "show", "--service", str(service), "--json").out) == listed
    assert_aligned(cli("service", "list", "--active").out)
    cli("service", "show", "--service", "999999999").assert_user_error(says="not found")


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.code == 0
    assert result.out.strip().startswith("panelflow 0.")


async def test_provider_and_key_show_never_the_secret(cli: Cli, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        provider = await make_provider(
            conn, name="lookup-up", url="https://panel.example/api/v2", key="UPSTREAM-SECRET-1"
        )
    await make_service(pool, provider_id=provider, provider_service_id="7")
    shown = cli("provider", "show", "--provider", str(provider), "--json")
    assert shown.code == 0, shown
    record = json.loads(shown.out)
    assert (record["id"], record["name"], record["services"], record["services_active"]) == (
        provider,
        "lookup-up",
        1,
        1,
    )
    human = cli("provider", "show", "--provider", str(provider))
    for output in (shown.out, human.out):
        assert "UPSTREAM-SECRET-1" not in output
        assert "api_key" not in output
    cli("provider", "show", "--provider", "999999999").assert_user_error(says="not found")

    account = await make_account(pool)
    key = await make_key(pool, account_id=account)
    prefix = key_prefix(key)
    as_json = json.loads(cli("key", "show", "--prefix", prefix, "--json").out)
    assert (as_json["prefix"], as_json["account_id"], as_json["state"]) == (prefix, account, "active")
    assert isinstance(as_json["scopes"], list)
    human = cli("key", "show", "--prefix", prefix)
    assert dict(line.split(None, 1) for line in human.out.splitlines())["state"] == "active"
    assert key not in human.out + json.dumps(as_json)
    cli("key", "show", "--prefix", "pf_nosuchkey").assert_user_error(says="no key")
