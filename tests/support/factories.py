"""Small keyword-only factories for test data, written through the same SQL the admin CLI uses."""

from __future__ import annotations

import itertools
import uuid
from decimal import Decimal

import asyncpg
from cryptography.fernet import Fernet
from pydantic import SecretStr

from shared.auth.keys import ACTION_SCOPES, generate_key, hash_key, key_prefix
from shared.catalog import providers
from shared.crypto.secretbox import PROVIDER_KEY_SETTING, SecretBox
from shared.db import accounts, catalog, keys
from shared.db.types import Conn

_seq = itertools.count(1)
ALL_SCOPES = sorted(set(ACTION_SCOPES.values()))
# The session's PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY (tests/conftest.py puts it in the settings every test
# process gets): provider keys in the test database are encrypted with it, not with the development key.
PROVIDER_KEY_ENCRYPTION_KEY = Fernet.generate_key().decode()


def provider_box() -> SecretBox:
    return SecretBox(SecretStr(PROVIDER_KEY_ENCRYPTION_KEY), setting=PROVIDER_KEY_SETTING)


async def make_provider(conn: Conn, *, name: str, url: str, key: str, idempotent: bool = False) -> int:
    """A provider row as `panelflow provider add` writes it (our key at it encrypted)."""
    return await providers.add_provider(conn, provider_box(), name=name, url=url, api_key=key, idempotent=idempotent)


async def make_account(
    pool: asyncpg.Pool, *, balance: Decimal | str = "100", tier: str = "standard", email: str | None = None
) -> int:
    async with pool.acquire() as conn:
        return await accounts.create_account(
            conn,
            email=email or f"acct-{uuid.uuid4().hex[:12]}@example.test",
            balance=Decimal(balance),
            tier=tier,
        )


async def make_key(
    pool: asyncpg.Pool,
    *,
    account_id: int,
    scopes: list[str] | None = None,
    allow_ips: list[str] | None = None,
    rate_limit_per_min: int | None = None,
    profile: str = "strict",
) -> str:
    key = generate_key()
    async with pool.acquire() as conn:
        await keys.insert_key(
            conn,
            account_id=account_id,
            key_hash=hash_key(key),
            prefix=key_prefix(key),
            scopes=scopes or ALL_SCOPES,
            allow_ips=allow_ips,
            rate_limit_per_min=rate_limit_per_min,
            profile=profile,
        )
    return key


async def make_customer(pool: asyncpg.Pool, *, balance: Decimal | str = "100", **key_args: object) -> tuple[int, str]:
    """An account with a key: (account id, key)."""
    account_id = await make_account(pool, balance=balance)
    return account_id, await make_key(pool, account_id=account_id, **key_args)  # type: ignore[arg-type]


async def make_service(
    pool: asyncpg.Pool,
    *,
    type: str = "Default",
    rate: Decimal | str = "0.90",
    min_quantity: int = 10,
    max_quantity: int = 10_000,
    refill: bool = True,
    cancel: bool = True,
    dripfeed: bool = True,
    provider_id: int | None = None,
    provider_service_id: str | None = None,
) -> int:
    async with pool.acquire() as conn:
        return await catalog.add_service(
            conn,
            name=f"{type} service {next(_seq)}",
            type=type,
            category="Tests",
            rate=Decimal(rate),
            min_quantity=min_quantity,
            max_quantity=max_quantity,
            refill=refill,
            cancel=cancel,
            dripfeed=dripfeed,
            provider_id=provider_id,
            provider_service_id=provider_service_id,
        )
