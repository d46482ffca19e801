"""`panelflow webhooks ...` run as the installed command, against the test database."""

from __future__ import annotations

import asyncio

import asyncpg

from shared.settings import Settings
from tests.support.webhooks import Receiver, deliveries, emit, register, wait_until, webhooks_cli


async def test_operator_disables_enables_and_replays(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, receiver: Receiver, dispatchers
) -> None:
    hook, _ = await register(pool, wh_settings, account_id=account, url=receiver.url())
    result = await webhooks_cli(wh_settings, "disable", "--webhook", str(hook), "--reason", "customer asked")
    assert result.returncode == 0, result.stderr
    listed = await webhooks_cli(wh_settings, "list", "--account", str(account))
    [line] = listed.stdout.splitlines()[1:]
    assert line.split("\t")[:3] == [str(hook), str(account), "no"]
    assert line.endswith("customer asked")
    await dispatchers()
    event_id = await emit(pool, account_id=account)
    await asyncio.sleep(0.3)
    assert [r["status"] for r in await deliveries(pool, hook)] == ["skipped"]
    assert receiver.hits == []
    refused = await webhooks_cli(wh_settings, "replay", "--webhook", str(hook), "--event", str(event_id))
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"panelflow: error: webhook {hook} is disabled; enable it first"
    assert (await webhooks_cli(wh_settings, "enable", "--webhook", str(hook))).returncode == 0
    replayed = await webhooks_cli(wh_settings, "replay", "--webhook", str(hook), "--event", str(event_id))
    assert replayed.stdout.strip() == "replayed 1"
    await wait_until(lambda: receiver.ids() == [str(event_id)])
    await wait_until(lambda: _succeeded(pool, hook))
    log = await webhooks_cli(wh_settings, "deliveries", "--webhook", str(hook))
    [row] = log.stdout.splitlines()[1:]
    assert row.split("\t")[:4] == [str(event_id), "order.status_changed", "succeeded", "1"]


async def _succeeded(pool: asyncpg.Pool, hook: int) -> bool:
    return [r["status"] for r in await deliveries(pool, hook)] == ["succeeded"]


async def test_unknown_webhook_is_one_line_error(wh_settings: Settings) -> None:
    result = await webhooks_cli(wh_settings, "enable", "--webhook", "987654321")
    assert result.returncode == 1
    assert result.stderr.strip() == "panelflow: error: webhook 987654321 not found"
