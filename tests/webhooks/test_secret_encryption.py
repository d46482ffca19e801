"""`panelflow webhooks encrypt-secrets` (run as the installed command): retiring an old key of
PANELFLOW_WEBHOOK_SECRET_KEY re-encrypts every endpoint secret under the new one, in a database of its own."""

from __future__ import annotations

import subprocess
import uuid

import asyncpg
from cryptography.fernet import Fernet
from pydantic import SecretStr

from shared.db.pool import create_pool
from shared.settings import Settings
from shared.webhooks.endpoints import rotate
from shared.webhooks.secretbox import SecretBox
from tests.support.factories import make_account
from tests.support.isolation import fresh_database
from tests.support.webhooks import register, webhooks_cli


async def encrypt_secrets(settings: Settings) -> subprocess.CompletedProcess[str]:
    return await webhooks_cli(settings, "encrypt-secrets")


async def stored(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT id, secret_enc, old_secret_enc FROM webhook_endpoints ORDER BY id")


async def test_an_old_key_is_retired_by_reencrypting_every_secret(wh_settings: Settings) -> None:
    async with fresh_database(wh_settings.database_url, f"secrets_{uuid.uuid4().hex[:8]}") as url:
        old = wh_settings.model_copy(update={"database_url": url})
        pool = await create_pool(old)
        try:
            account = await make_account(pool)
            overlapping, _ = await register(pool, old, account_id=account, url="http://127.0.0.2:9/a")
            expired, _ = await register(pool, old, account_id=account, url="http://127.0.0.2:9/b")
            async with pool.acquire() as conn:
                for hook in (overlapping, expired):
                    await rotate(conn, old, SecretBox(old), account_id=account, endpoint_id=hook)
                await conn.execute(
                    "UPDATE webhook_endpoints SET old_secret_expires_at = now() - interval '1 s' WHERE id = $1", expired
                )
            old_box = SecretBox(old)
            before = await stored(pool)
            secrets = {
                r["id"]: (old_box.decrypt(r["secret_enc"]), old_box.decrypt(r["old_secret_enc"])) for r in before
            }

            unrelated = Fernet.generate_key().decode()
            refused = await encrypt_secrets(old.model_copy(update={"webhook_secret_key": SecretStr(unrelated)}))
            assert refused.returncode == 1
            assert f"webhooks {overlapping}, {expired} cannot be decrypted" in refused.stderr
            assert await stored(pool) == before  # nothing changed

            new_key = Fernet.generate_key().decode()
            assert old.webhook_secret_key is not None
            keys = f"{new_key},{old.webhook_secret_key.get_secret_value()}"  # new first: it encrypts
            both = old.model_copy(update={"webhook_secret_key": SecretStr(keys)})
            done = await encrypt_secrets(both)
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == "re-encrypted the secrets of 2 webhooks"

            new_box = SecretBox(old.model_copy(update={"webhook_secret_key": SecretStr(new_key)}))
            after = {r["id"]: r for r in await stored(pool)}
            assert new_box.decrypt(after[overlapping]["secret_enc"]) == secrets[overlapping][0]
            assert new_box.decrypt(after[overlapping]["old_secret_enc"]) == secrets[overlapping][1]
            assert new_box.decrypt(after[expired]["secret_enc"]) == secrets[expired][0]
            assert after[expired]["old_secret_enc"] is None  # past its overlap: signs nothing, kept nowhere
        finally:
            await pool.close()
