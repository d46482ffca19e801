"""Secrets we must read back (webhook signing secrets, our API keys at upstream providers) encrypted at rest
with Fernet: a hash would not do, we sign with the one and send the other.

Each kind has a setting of its own holding one or more Fernet keys, comma-separated: the first encrypts,
every one decrypts, so a key is rotated by prepending a new one and re-encrypting (`rotate`) at leisure.

    box = provider_key_box(settings)    # PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY
    token = box.encrypt("our-key")      # what the database holds
    box.decrypt(token)                  # SecretBoxError when no configured key opens it

An empty setting is an error (`SecretBoxError` saying which setting to set) unless `PANELFLOW_ENV=development`,
where a fixed development key anyone can derive from this source is used, with a warning. Processes call
`require_keys` at start, so a production process missing a key refuses to start instead of failing later.
"""

from __future__ import annotations

import base64
import hashlib

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from shared.settings import Settings

log = structlog.get_logger(__name__)

WEBHOOK_SECRET_KEY_SETTING = "PANELFLOW_WEBHOOK_SECRET_KEY"  # noqa: S105 (a setting name, not a secret)
PROVIDER_KEY_SETTING = "PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY"

# Development only: keys anyone can derive from this source. A warning says so whenever one is used.
_DEVELOPMENT_SEEDS = {
    WEBHOOK_SECRET_KEY_SETTING: b"panelflow development webhook secret key - not for production",
    PROVIDER_KEY_SETTING: b"panelflow development provider key encryption key - not for production",
}


class SecretBoxError(RuntimeError):
    pass


def development_key(setting: str = WEBHOOK_SECRET_KEY_SETTING) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(_DEVELOPMENT_SEEDS[setting]).digest())


class SecretBox:
    """Encrypts and decrypts with the Fernet keys of one setting (`setting` names it in warnings and errors)."""

    def __init__(self, configured: SecretStr | None, *, setting: str, development: bool = False) -> None:
        self.setting = setting
        text = configured.get_secret_value() if configured else ""
        keys = [k.strip().encode() for k in text.split(",") if k.strip()]
        if not keys:
            if not development:
                raise SecretBoxError(missing_key_message(setting))
            log.warning("secret_key_unset", setting=setting, detail=f"using the development key; set {setting}")
            keys = [development_key(setting)]
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError as exc:
            raise SecretBoxError(f"{setting} is not a list of Fernet keys") from exc

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken as exc:
            raise SecretBoxError(f"a secret cannot be decrypted with the keys of {self.setting}") from exc

    def rotate(self, token: str) -> str:
        """The same secret encrypted under the first (current) key; SecretBoxError when no key opens it."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise SecretBoxError(f"a secret cannot be decrypted with the keys of {self.setting}") from exc


def missing_key_message(setting: str) -> str:
    return (
        f"{setting} is not set: it is required outside development (set it to a Fernet key: python -c "
        '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        "; or set PANELFLOW_ENV=development to use the development key on a development machine)"
    )


def webhook_secret_box(settings: Settings) -> SecretBox:
    return SecretBox(
        settings.webhook_secret_key, setting=WEBHOOK_SECRET_KEY_SETTING, development=settings.env == "development"
    )


def provider_key_box(settings: Settings) -> SecretBox:
    return SecretBox(
        settings.provider_key_encryption_key, setting=PROVIDER_KEY_SETTING, development=settings.env == "development"
    )


_BOXES = {WEBHOOK_SECRET_KEY_SETTING: webhook_secret_box, PROVIDER_KEY_SETTING: provider_key_box}


def require_keys(settings: Settings, *setting_names: str) -> None:
    """Check at start that the named key settings make a box: SecretBoxError (the message says what to set)."""
    for name in setting_names:
        _BOXES[name](settings)
