"""The order `make run` places by itself once the api answers, followed until it is terminal.

It goes through the public API exactly like the printed curl line, so the newcomer watches one order travel
api → worker → provider simulator → worker, and the webhook receiver print its signed status changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

TERMINAL = ("Completed", "Partial", "Canceled")
POLL_S = 1.0
FOLLOW_TIMEOUT_S = 120.0


class DemoOrderError(Exception):
    pass


def add_params(key: str, service: str, request_id: str) -> dict[str, str]:
    """The `add` call of the demo order (and of the banner's curl line)."""
    return {
        "key": key,
        "action": "add",
        "service": service,
        "link": "https://example.com/post/1",
        "quantity": "100",
        "request_id": request_id,
    }


async def _call(session: aiohttp.ClientSession, url: str, params: dict[str, str]) -> Any:
    async with session.post(url, data=params, timeout=aiohttp.ClientTimeout(total=10)) as resp:
        body = await resp.json(content_type=None)
        if resp.status != 200:
            raise DemoOrderError(f"{params['action']} answered {resp.status}: {body}")
        return body


async def place_and_follow(api: str, key: str, service: str, say: Callable[[str], None]) -> str:
    """Place the demo order, report each status it passes through, and return the terminal one."""
    request_id = f"make-run-{int(time.time())}"
    async with aiohttp.ClientSession() as session:
        placed = await _call(session, api, add_params(key, service, request_id))
        order = str(placed["order"])
        say(f"demo order {order} placed (request_id {request_id}); following its status (and the receiver below)")
        last = None
        deadline = time.monotonic() + FOLLOW_TIMEOUT_S
        while time.monotonic() < deadline:
            status = await _call(session, api, {"key": key, "action": "status", "order": order})
            if status["status"] != last:
                last = status["status"]
                say(f"demo order {order}: {last} (charge {status['charge']}, remains {status['remains']})")
            if last in TERMINAL:
                say(f"demo order {order} is {last}: the 'receiver' lines are its signed webhooks; try the curl line")
                return str(last)
            await asyncio.sleep(POLL_S)
    raise DemoOrderError(f"demo order {order} still {last} after {FOLLOW_TIMEOUT_S:.0f} s (see .run/worker.log)")
