"""Endpoint secrets at rest: encrypted with Fernet (we must sign with them, so a hash would not do).

`settings.webhook_secret_key` holds one or more Fernet keys, comma-separated: the first encrypts, every one
decrypts, so the key can be rotated by prepending a new one and re-encrypting at leisure.
"""

from __future__ import annotations

import base64
import hashlib

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared.settings import Settings

log = structlog.get_logger(__name__)

# Development only: a key anyone can derive from this source. A warning says so whenever it is used.
_DEVELOPMENT_SEED = b"panelflow development webhook secret key - not for production"


class SecretBoxError(RuntimeError):
    pass


def development_key() -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(_DEVELOPMENT_SEED).digest())


class SecretBox:
    def __init__(self, settings: Settings) -> None:
        configured = settings.webhook_secret_key.get_secret_value() if settings.webhook_secret_key else ""
        keys = [k.strip().encode() for k in configured.split(",") if k.strip()]
        if not keys:
            log.warning(
                "webhook_secret_key_unset", detail="using the development key; set PANELFLOW_WEBHOOK_SECRET_KEY"
            )
            keys = [development_key()]
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError as exc:
            raise SecretBoxError("PANELFLOW_WEBHOOK_SECRET_KEY is not a list of Fernet keys") from exc

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken as exc:
            raise SecretBoxError("a webhook secret cannot be decrypted with the configured keys") from exc
