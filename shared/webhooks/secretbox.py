"""Endpoint secrets at rest: `SecretBox(settings)` is the box of `PANELFLOW_WEBHOOK_SECRET_KEY`.

The box itself lives in `shared.crypto.secretbox` (provider keys use it too); this module keeps the webhooks'
constructor so that its callers need no change, and re-encrypts every stored secret under the setting's first key
(`reencrypt_secrets`, for `panelflow webhooks encrypt-secrets`: retiring an old key).
"""

from __future__ import annotations

import structlog

from shared.crypto import secretbox
from shared.crypto.secretbox import SecretBoxError, development_key
from shared.db import webhooks as db
from shared.db.types import Conn
from shared.settings import Settings

log = structlog.get_logger(__name__)

__all__ = ["SecretBox", "SecretBoxError", "development_key", "reencrypt_secrets"]


class SecretBox(secretbox.SecretBox):
    def __init__(self, settings: Settings) -> None:
        super().__init__(
            settings.webhook_secret_key,
            setting=secretbox.WEBHOOK_SECRET_KEY_SETTING,
            development=settings.env == "development",
        )


async def reencrypt_secrets(conn: Conn, box: secretbox.SecretBox) -> int:
    """Re-encrypt every endpoint's secret (and its previous one while that still signs) under the box's first key,
    in one transaction; a previous secret past its overlap is cleared. A secret no configured key decrypts raises
    SecretBoxError naming the endpoints, and nothing changes. Returns how many endpoints were re-encrypted."""
    async with conn.transaction():
        rows = await db.secrets_for_update(conn)
        unreadable: list[int] = []
        for row in rows:
            try:
                current = box.rotate(row["secret_enc"])
                previous = box.rotate(row["old_secret_enc"]) if row["old_secret_enc"] is not None else None
            except SecretBoxError:
                unreadable.append(row["id"])
                continue
            await db.set_secrets(conn, row["id"], current, previous)
        if unreadable:
            raise SecretBoxError(
                f"the secrets of webhooks {', '.join(map(str, unreadable))} cannot be decrypted with the keys of "
                f"{box.setting}; nothing was changed"
            )
    log.info("webhook_secrets_reencrypted", endpoints=len(rows))
    return len(rows)
