"""Webhook fixtures: settings for local receivers, a clean account per test, in-process dispatchers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.abc import AbstractResolver
from cryptography.fernet import Fernet
from pydantic import SecretStr

from shared.net.guard import AddressGuard
from shared.settings import Settings
from shared.webhooks.dispatcher import Dispatcher
from tests.support.factories import make_account
from tests.support.webhooks import RECEIVER_NETWORK, Receiver

SECRET_KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def wh_settings(settings: Settings) -> Settings:
    """Plain http to the receivers' address only, short schedules, fast polling."""
    return settings.model_copy(
        update={
            "webhooks_allow_http": True,
            "webhooks_allowed_networks": RECEIVER_NETWORK,
            "webhook_secret_key": SecretStr(SECRET_KEY),
            "webhook_retry_schedule_s": [0.3, 0.3, 0.3],
            "webhook_retry_jitter": 0.0,
            "webhook_poll_s": 0.05,
            "webhook_timeout_s": 3.0,
            "webhook_lease_s": 10.0,
            "webhook_endpoint_rate_per_s": 0.0,
        }
    )


@pytest.fixture
async def account(pool: asyncpg.Pool) -> AsyncIterator[int]:
    account_id = await make_account(pool)
    yield account_id
    # Nothing of this test may be retried into a later test's receiver (ports get reused).
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM webhook_endpoints WHERE account_id = $1", account_id)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def dispatchers(pool: asyncpg.Pool, wh_settings: Settings) -> AsyncIterator[Callable[..., Any]]:
    """`await start(resolver=None, **setting overrides)` runs a dispatcher in this loop until the test ends."""
    running: list[Dispatcher] = []

    async def start(resolver: AbstractResolver | None = None, **overrides: Any) -> Dispatcher:
        s = wh_settings.model_copy(update=overrides)
        d = Dispatcher(s, pool, AddressGuard(s.webhooks_allowed_networks, resolver))
        await d.start()
        running.append(d)
        return d

    yield start
    for d in running:
        with contextlib.suppress(Exception):
            await d.stop(grace_s=0.5)
