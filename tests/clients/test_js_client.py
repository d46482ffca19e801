"""clients/js: its own tests (clients/js/test, Node's test runner) run against the real api with keys made here."""

from __future__ import annotations

import asyncio
import json
import os
from decimal import Decimal
from pathlib import Path

import asyncpg

from shared.webhooks.signing import generate_secret, sign_headers
from tests.clients.conftest import new_customer
from tests.support.processes import ApiProcess

JS = Path(__file__).resolve().parents[2] / "clients" / "js"


async def test_node_test_runner_passes_against_the_api(api: ApiProcess, pool: asyncpg.Pool, service: int) -> None:
    customers = {
        "strict": await new_customer(pool),
        "classic": await new_customer(pool, profile="classic"),
        "poor": await new_customer(pool, balance="0.01"),
        "retry": await new_customer(pool),
        "batch": await new_customer(pool),
    }
    secret = generate_secret()
    body = json.dumps({"type": "order.completed", "timestamp": "2026-11-30T12:00:00Z", "data": {"order": 7}})
    webhook = {
        "secret": secret,
        "other": generate_secret(),
        "headers": sign_headers([secret], "evt-js", body.encode()),
        "body": body,
    }
    env = {
        **os.environ,
        "PANELFLOW_API_URL": api.url + "/api/v2",
        "PANELFLOW_TEST_SERVICE": str(service),
        "PANELFLOW_TEST_KEYS": json.dumps({name: c.key for name, c in customers.items()}),
        "PANELFLOW_TEST_WEBHOOK": json.dumps(webhook),
    }
    proc = await asyncio.create_subprocess_exec(
        "node", "--test", "--test-reporter=tap", "test/",
        cwd=JS, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    report = out.decode()
    assert proc.returncode == 0, report
    assert "# pass 6" in report, report
    assert "# fail 0" in report, report
    # What the JS tests did, seen in the database: the lost answers left one order and one charge.
    retry = customers["retry"]
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", retry.account_id) == 1
    balance = await pool.fetchval("SELECT balance FROM accounts WHERE id = $1", retry.account_id)
    assert balance == Decimal("9.90")
    classic = customers["classic"]
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", classic.account_id) == 1
