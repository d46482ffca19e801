"""Helpers for the api tests: an HTTP client that speaks `/api/v2` to a real api process."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest

from shared.db import accounts
from tests.support.processes import ApiProcess


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def error(self) -> str | None:
        return self.body.get("error") if isinstance(self.body, dict) else None


class ApiClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def request(
        self,
        method: str = "POST",
        path: str = "/api/v2",
        *,
        data: Any = None,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        async with self.session.request(
            method, self.base_url + path, data=data, json=json_body, params=params, headers=headers
        ) as resp:
            text = await resp.text()
            assert resp.content_type == "application/json", (resp.status, resp.content_type, text)
            return Reply(resp.status, json.loads(text), dict(resp.headers))

    async def call(self, key: str | None, action: str, **params: Any) -> Reply:
        """A form POST, the way most reseller clients call the API."""
        return await self.call_with_headers({}, key, action, **params)

    async def call_with_headers(self, headers: dict[str, str], key: str | None, action: str, **params: Any) -> Reply:
        form = {"action": action, **{k: str(v) for k, v in params.items()}}
        if key is not None:
            form["key"] = key
        return await self.request(data=form, headers=headers)


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture(scope="session")
def client(api: ApiProcess, http: aiohttp.ClientSession) -> ApiClient:
    return ApiClient(http, api.url)


def client_for(http: aiohttp.ClientSession, process: ApiProcess) -> ApiClient:
    return ApiClient(http, process.url)


async def balance_of(pool: asyncpg.Pool, account_id: int) -> Decimal:
    async with pool.acquire() as conn:
        found = await accounts.balance_of(conn, account_id)
    assert found is not None
    return found[0]


async def ledger_clean(pool: asyncpg.Pool) -> bool:
    async with pool.acquire() as conn:
        return not await accounts.ledger_mismatches(conn)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 3.0, interval: float = 0.05) -> float:
    """Wait until `check()` is true; returns the seconds it took (fails the test on timeout)."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def wait_for_service(client: ApiClient, key: str, *service_ids: int) -> None:
    """Services reach the api's catalog through NOTIFY: wait until they are orderable."""

    async def listed() -> bool:
        reply = await client.call(key, "services")
        return set(service_ids) <= {s["service"] for s in reply.body}

    await eventually(listed)
