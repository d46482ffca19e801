"""Our key at a provider is decrypted by the worker; a key it cannot decrypt sends nothing and loses nothing."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from shared.catalog import providers
from shared.crypto.secretbox import PROVIDER_KEY_SETTING, SecretBox
from shared.db import catalog as catalog_sql
from shared.ordering.placement import Placer
from shared.settings import Settings
from shared.worker.upstreams import UnknownProvider, UnreadableProviderKey
from tests.support.factories import make_account, provider_box
from tests.support.worker import SimProcess, order_row, place, unique_link
from tests.worker.components import worker_parts


async def test_a_key_that_does_not_decrypt_is_not_sent_until_an_operator_fixes_it(
    wpool: asyncpg.Pool, placer: Placer, wsettings: Settings, sim: SimProcess
) -> None:
    foreign = SecretBox(SecretStr(Fernet.generate_key().decode()), setting=PROVIDER_KEY_SETTING)
    async with wpool.acquire() as conn:
        provider_id = await providers.add_provider(
            conn, foreign, name=f"sim-{uuid.uuid4().hex[:8]}", url=sim.api_url, api_key=wsettings.sim_key
        )
        service = await catalog_sql.add_service(
            conn, name="foreign-key", type="Default", rate=Decimal(1), min_quantity=1, max_quantity=100,
            provider_id=provider_id, provider_service_id="1",
        )  # fmt: skip
    account = await make_account(wpool, balance="1")
    link = unique_link()
    order_id = await place(placer, wpool, account_id=account, service_id=service, link=link, quantity=60)

    async with worker_parts(wpool, wsettings) as parts:
        with pytest.raises(UnreadableProviderKey, match=PROVIDER_KEY_SETTING) as raised:
            await parts.upstreams.client(provider_id)
        assert isinstance(raised.value, UnknownProvider)  # every caller already treats it as "not sent"
        await parts.submitter.submit_named([order_id])
    row = await order_row(wpool, order_id)
    assert row["status"] == "pending"  # not sent, still to be bought; the money stays reserved
    assert "does not decrypt" in row["last_error"]
    assert link not in (await sim.stats())["orders_per_link"]

    # The operator stores the key again under the configured key: the next worker buys the order.
    async with wpool.acquire() as conn:
        assert await providers.set_provider_key(conn, provider_box(), provider_id, wsettings.sim_key)
    async with worker_parts(wpool, wsettings) as parts:
        await parts.submitter.submit_named([order_id])
    assert (await order_row(wpool, order_id))["status"] == "in_progress"
    assert (await sim.stats())["orders_per_link"][link] == 1
