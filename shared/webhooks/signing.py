"""Standard Webhooks signing (https://www.standardwebhooks.com), for our sender and for receivers.

A secret is `whsec_` + base64 of random bytes; the signature of a message is
`v1,` + base64(HMAC-SHA256(secret bytes, f"{id}.{timestamp}.{body}")). Several signatures (a rotation)
are separated by spaces. Receivers use `verify()`: it checks the timestamp window and compares in
constant time. This module imports nothing from the rest of panelflow, so receivers can copy it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 - the public prefix, not a secret
SECRET_BYTES = 32
# Receivers refuse messages whose timestamp is further than this from their clock (replay protection).
DEFAULT_TOLERANCE_S = 300


class VerificationError(ValueError):
    pass


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise VerificationError("malformed secret") from exc


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one `v1,` signature per secret, space-separated."""
    return " ".join(signature(s, msg_id, timestamp, body) for s in secrets_)


def sign_headers(secrets_: Iterable[str], msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(secrets_, msg_id, ts, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Raise `VerificationError` unless one of the message's `v1` signatures is `secret`'s, in the time window.

    `headers` is looked up with lower-case names (aiohttp's and most frameworks' mappings are
    case-insensitive; lower-case a plain dict first).
    """
    msg_id = headers.get("webhook-id")
    ts_text = headers.get("webhook-timestamp")
    sig_text = headers.get("webhook-signature")
    if not msg_id or not ts_text or not sig_text:
        raise VerificationError("missing webhook headers")
    try:
        ts = int(ts_text)
    except ValueError as exc:
        raise VerificationError("malformed timestamp") from exc
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise VerificationError("timestamp outside the tolerance window")
    expected = signature(secret, msg_id, ts, body).encode()
    # Compare against every candidate without stopping early, so timing reveals nothing.
    found = False
    for candidate in sig_text.split(" "):
        version, _, _ = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(candidate.encode(), expected):
            found = True
    if not found:
        raise VerificationError("no matching signature")
