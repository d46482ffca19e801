"""Verify panelflow's webhook deliveries (Standard Webhooks signatures) with the `standardwebhooks` package."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import standardwebhooks

from panelflow_client.errors import WebhookVerificationError


def verify_webhook(secret: str | list[str], headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The event (`{"type", "timestamp", "data"}`) of a delivery whose signature verifies under `secret` (the
    `whsec_...` of `webhook.add` / `webhook.rotate`; several while you switch); raises WebhookVerificationError
    otherwise (bad or missing signature, timestamp outside 5 minutes). Pass the raw body bytes, not re-encoded
    JSON. Deduplicate on `headers["webhook-id"]`: retries and replays carry the same id."""
    secrets = [secret] if isinstance(secret, str) else secret
    plain = {k.lower(): v for k, v in headers.items()}
    last = "no secret given"
    for candidate in secrets:
        try:
            event = standardwebhooks.Webhook(candidate).verify(body, plain)
        except standardwebhooks.WebhookVerificationError as exc:
            last = str(exc)
            continue
        except ValueError as exc:  # a signature header that is not "v1,<base64>"
            last = f"malformed signature header: {exc}"
            continue
        if not isinstance(event, dict):
            raise WebhookVerificationError("the event is not a JSON object")
        return event
    raise WebhookVerificationError(last)
