"""A key's last use, as `panelflow key list|show` (run as a user runs it) shows it after requests to a real api:
the time of the last request, written by the api in batches (every `key_last_use_flush_s` and at shutdown),
never once per request; a key never used shows none."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from shared.auth.keys import key_prefix
from shared.settings import Settings
from tests.api.conftest import ApiClient
from tests.cli.conftest import run_cli
from tests.support.factories import make_customer, make_key
from tests.support.processes import ApiProcess


def listed(settings: Settings, account_id: int) -> dict[str, dict[str, Any]]:
    """`panelflow key list --account A --json`, by prefix; every line parses as JSON."""
    result = run_cli(settings, "key", "list", "--account", str(account_id), "--json")
    assert result.code == 0, result
    return {r["prefix"]: r for r in (json.loads(line) for line in result.out.splitlines())}


async def test_the_last_request_time_is_shown_within_one_flush_interval(
    settings: Settings, pool: asyncpg.Pool, http: aiohttp.ClientSession, logs_dir: Path
) -> None:
    account_id, used = await make_customer(pool)
    unused = await make_key(pool, account_id=account_id)
    api = await ApiProcess(
        settings, logs_dir / "api-key-last-use.log", relay_enabled=False, key_last_use_flush_s=0.5
    ).started()
    try:
        client = ApiClient(http, api.url)
        before = time.time()
        for _ in range(3):
            assert (await client.call(used, "balance")).status == 200
        after = time.time()

        written = "SELECT last_used_at FROM api_keys WHERE prefix = $1"
        deadline = time.monotonic() + 10
        while await pool.fetchval(written, key_prefix(used)) is None:
            assert time.monotonic() < deadline, "the last use was never written"
            await asyncio.sleep(0.1)

        keys = listed(settings, account_id)
        shown = datetime.fromisoformat(keys[key_prefix(used)]["last_used_at"]).timestamp()
        # The time of the last request itself (same clock), not of the write.
        assert before <= shown <= after, (before, shown, after)
        assert keys[key_prefix(unused)]["last_used_at"] is None

        human = run_cli(settings, "key", "list", "--account", str(account_id))
        header, *rows = human.out.splitlines()
        assert header.split()[-1] == "LAST_USED_AT"
        by_prefix = {row.split()[0]: row for row in rows}
        assert by_prefix[key_prefix(unused)].endswith(" never")
        assert by_prefix[key_prefix(used)].rsplit(" ", 1)[1].startswith(keys[key_prefix(used)]["last_used_at"][:19])
        show = run_cli(settings, "key", "show", "--prefix", key_prefix(unused), "--json")
        assert json.loads(show.out)["last_used_at"] is None
    finally:
        api.stop()


async def test_uses_are_not_written_per_request_and_are_written_at_shutdown(
    settings: Settings, pool: asyncpg.Pool, http: aiohttp.ClientSession, logs_dir: Path
) -> None:
    account_id, key = await make_customer(pool)
    api = await ApiProcess(
        settings, logs_dir / "api-key-last-use-shutdown.log", relay_enabled=False, key_last_use_flush_s=3600
    ).started()
    try:
        client = ApiClient(http, api.url)
        for _ in range(20):
            assert (await client.call(key, "balance")).status == 200
        last_request = time.time()
        # Nothing written per request (and the first flush is an hour away).
        assert await pool.fetchval("SELECT last_used_at FROM api_keys WHERE prefix = $1", key_prefix(key)) is None
    finally:
        stopping = time.monotonic()
        assert api.stop() == 0
        print(f"api stopped in {time.monotonic() - stopping:.1f} s")
    shown = listed(settings, account_id)[key_prefix(key)]["last_used_at"]
    assert shown is not None, "the api did not write the last use when it stopped"
    assert datetime.fromisoformat(shown).timestamp() <= last_request
