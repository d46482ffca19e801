"""Endpoint secrets at rest: `SecretBox(settings)` is the box of `PANELFLOW_WEBHOOK_SECRET_KEY`.

The box itself lives in `shared.crypto.secretbox` (provider keys use it too); this module keeps the webhooks'
constructor so that its callers need no change.
"""

from __future__ import annotations

from shared.crypto import secretbox
from shared.crypto.secretbox import SecretBoxError, development_key
from shared.settings import Settings

__all__ = ["SecretBox", "SecretBoxError", "development_key"]


class SecretBox(secretbox.SecretBox):
    def __init__(self, settings: Settings) -> None:
        super().__init__(
            settings.webhook_secret_key,
            setting=secretbox.WEBHOOK_SECRET_KEY_SETTING,
            development=settings.env == "development",
        )
