"""Sentry for every process: initialised only when a DSN is set, with secrets scrubbed from every event."""

from __future__ import annotations

import re
from typing import Any

import sentry_sdk
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

from shared.settings import Settings

EXTRA_DENYLIST = ["key", "api_key", "x-api-key", "secret", "webhook_secret", "whsec", "provider_key"]
# Key material that may appear inside strings (messages, URLs, form bodies).
_SECRET_PATTERNS = [
    re.compile(r"(?i)(key=)[^&\s\"']+"),
    re.compile(r"pf_[A-Za-z0-9_-]{16,}"),
    re.compile(r"whsec_[A-Za-z0-9+/=]{16,}"),
]


def scrub_text(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[Filtered]", text)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def before_send(event: Any, _hint: Any) -> Any:
    return _scrub(event)


def init_sentry(settings: Settings, process: str, **options: Any) -> bool:
    if settings.sentry_dsn is None or not settings.sentry_dsn.get_secret_value():
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.sentry_environment,
        release=settings.release,
        send_default_pii=False,
        event_scrubber=EventScrubber(denylist=DEFAULT_DENYLIST + EXTRA_DENYLIST, recursive=True),
        before_send=before_send,
        server_name=process,
        **options,
    )
    sentry_sdk.set_tag("process", process)
    return True
