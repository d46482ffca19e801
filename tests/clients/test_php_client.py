"""clients/php (the classic `Api` class shape) run by Debian's php-cli against the real api, with a classic and
a strict key; and its webhook verification against the dispatcher's signing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from shared.domain.request_ids import MISSING_REQUEST_ID
from shared.webhooks.signing import generate_secret, sign_headers
from tests.clients.conftest import new_customer
from tests.support.processes import ApiProcess

HERE = Path(__file__).parent / "php"


async def php(*args: str) -> str:
    def run() -> str:
        proc = subprocess.run(["php", *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
        assert proc.stderr == "", proc.stderr  # no PHP warning or notice
        return proc.stdout

    return await asyncio.to_thread(run)


async def drive(api: ApiProcess, key: str, service: int) -> dict[str, Any]:
    return json.loads(await php(str(HERE / "drive_api.php"), api.url + "/api/v2", key, str(service)))


def check_common(out: dict[str, Any], service: int) -> int:
    """What both profiles answer alike; returns the order placed with a request id."""
    assert any(s["service"] == service for s in out["services"]["answer"])
    order = out["order_rid"]["answer"]["order"]
    assert out["order_rid_again"]["answer"] == {"order": order}  # the request id made the retry safe
    assert out["status"]["answer"]["status"] == "Pending"
    assert out["multiStatus"]["answer"][str(order)]["status"] == "Pending"
    assert out["multiStatus"]["answer"]["999999999"] == {"error": "Incorrect order ID"}
    assert out["multiRefill"]["answer"] == [{"order": order, "refill": {"error": "Order not eligible for refill"}}]
    assert out["multiRefillStatus"]["answer"] == [{"refill": 999999999, "status": {"error": "Refill not found"}}]
    assert out["cancel"]["answer"] == [{"order": order, "cancel": 1}]
    assert out["cancel"]["status"] == 200
    assert out["legacy_balance"] == out["balance"]
    for name in ("services", "order_rid", "order_rid_again", "status", "multiStatus", "cancel", "balance"):
        assert out[name]["error_status"] == 0, name  # answers that are no error
    return order


async def test_classic_key_every_method_answers_200(api: ApiProcess, pool: asyncpg.Pool, service: int) -> None:
    customer = await new_customer(pool, profile="classic")
    out = await drive(api, customer.key, service)
    order = check_common(out, service)
    classic_order = out["order"]["answer"]["order"]  # sent without request_id, as classic code does
    assert classic_order != order
    for name in ("refill", "refillStatus"):
        assert out[name]["status"] == 200, name  # errors too
        assert out[name]["error_status"] == 400, name  # the status they stand for, from X-Error-Status
    assert out["order"]["error_status"] == 0
    assert out["refill"]["answer"] == {"error": "Order not eligible for refill"}
    assert out["refillStatus"]["answer"] == {"error": "Refill not found"}
    # Two orders of 0.10; the one canceled while pending was refunded.
    assert Decimal(out["balance"]["answer"]["balance"]) == Decimal("9.90")
    assert out["balance"]["answer"]["currency"] == "USD"
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", customer.account_id) == 2


async def test_strict_key_refuses_only_the_order_without_request_id(
    api: ApiProcess, pool: asyncpg.Pool, service: int
) -> None:
    customer = await new_customer(pool, profile="strict")
    out = await drive(api, customer.key, service)
    check_common(out, service)
    assert out["order"] == {"answer": {"error": MISSING_REQUEST_ID}, "status": 400, "error_status": 400}
    for name in ("refill", "refillStatus"):
        assert (out[name]["status"], out[name]["error_status"]) == (400, 400), name
    assert out["balance"]["status"] == 200
    assert Decimal(out["balance"]["answer"]["balance"]) == Decimal("10")  # the one order was canceled: refunded
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE account_id = $1", customer.account_id) == 1


async def test_php_webhook_verification(tmp_path: Path) -> None:
    secret = generate_secret()
    body = json.dumps({"type": "order.completed", "timestamp": "2026-11-30T12:00:00Z", "data": {"order": 7}})
    headers = sign_headers([generate_secret(), secret], "evt-1", body.encode())  # mid-rotation: two signatures
    cases = {
        "good": (secret, headers, body, "verified order.completed"),
        "capitalised": (secret, {k.title(): v for k, v in headers.items()}, body, "verified order.completed"),
        "tampered": (secret, headers, body.replace("7", "8"), "refused"),
        "other secret": (generate_secret(), headers, body, "refused"),
        "too old": (
            secret,
            sign_headers([secret], "e", body.encode(), timestamp=int(time.time()) - 600),
            body,
            "refused",
        ),
        "no headers": (secret, {}, body, "refused"),
    }
    for name, (key, sent, payload, expected) in cases.items():
        file = tmp_path / f"{name}.json"
        file.write_text(json.dumps({"secret": key, "headers": sent, "body": payload}))
        assert (await php(str(HERE / "verify_webhook.php"), str(file))).strip() == expected, name
