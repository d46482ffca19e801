"""Run mode and encryption keys."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, SecretStr

from shared.settings.field import setting

_FERNET = "comma-separated Fernet keys (secret)"


class ModeAndKeys(BaseModel):
    """Run mode and encryption keys

    Generate a Fernet key with
    `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`; rotating one:
    docs/operations.md, "Rotate keys".
    """

    env: Literal["development", "production"] = setting(
        "production",
        meaning="`production`: a process or command that needs an encryption key refuses to start while that key "
        "is empty. `development` (what `make run`, `make up` and `make test` set) uses fixed, publicly known "
        "development keys instead, with a warning: never on a machine holding real data.",
        type="`development` or `production`",
    )
    webhook_secret_key: SecretStr | None = setting(
        None,
        meaning="Encrypts the webhook signing secrets stored in the database: the first key encrypts, every key "
        "decrypts (`panelflow webhooks encrypt-secrets` re-encrypts under the first, so an old key can go). "
        "Required outside development; without a key that opens them no webhook can be signed.",
        type=_FERNET,
    )
    provider_key_encryption_key: SecretStr | None = setting(
        None,
        meaning="Encrypts our API keys at the upstream providers stored in the database; the first key encrypts, "
        "every key decrypts (`panelflow provider encrypt-keys` re-encrypts under the first). Required outside "
        "development; without a key that opens them the worker cannot call the providers.",
        type=_FERNET,
    )
