"""API key material: generation, hashing, and the scopes a key may hold. Only the SHA-256 is stored."""

from __future__ import annotations

import hashlib
import re
import secrets

KEY_PREFIX = "pf_"
# What `generate_key` makes: the prefix and 32 random bytes in URL-safe base64 (43 characters, no padding).
_KEY_FORMAT = re.compile(r"pf_[A-Za-z0-9_-]{43}")
PREFIX_LEN = 12  # "pf_" + 9 characters: enough to recognise a key in a list, useless to guess it
# Every API action belongs to one scope; a key holds a subset.
SCOPES = ("read", "orders", "webhooks")
# Compatibility profiles (docs/migrating.md): "strict" is the contract as written; "classic" serves programs
# written for classic panels (`add` without request_id, every error but 429 answered with HTTP 200).
STRICT = "strict"
CLASSIC = "classic"
PROFILES = (STRICT, CLASSIC)
ACTION_SCOPES = {
    "services": "read",
    "status": "read",
    "refill_status": "read",
    "balance": "read",
    "add": "orders",
    "refill": "orders",
    "cancel": "orders",
    "webhook.add": "webhooks",
    "webhook.list": "webhooks",
    "webhook.delete": "webhooks",
    "webhook.test": "webhooks",
    "webhook.deliveries": "webhooks",
    "webhook.replay": "webhooks",
    "webhook.rotate": "webhooks",
}


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def well_formed(key: str) -> bool:
    """Whether `key` could be one of ours: anything else is refused without a lookup."""
    return _KEY_FORMAT.fullmatch(key) is not None


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def key_prefix(key: str) -> str:
    return key[:PREFIX_LEN]


def parse_scopes(text: str) -> list[str]:
    scopes = sorted({s.strip() for s in text.split(",") if s.strip()})
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes must be a comma-separated subset of {', '.join(SCOPES)}")
    return scopes
