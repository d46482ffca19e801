"""One HTTP attempt of one delivery: build the signed Standard Webhooks request, send it, read a capped body.

Redirects are never followed (a 3xx is a failure), the whole attempt has one deadline, and the response body
is read as a stream up to the cap; a longer or slower body is cut off and the connection closed.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from shared.net.guard import AddressGuard, ForbiddenDestination, InvalidUrl, forbidden_cause
from shared.webhooks import signing

USER_AGENT = "panelflow-webhooks/0.1"


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    latency_ms: int
    error: str | None = None
    body: str | None = None
    retry_after: str | None = None


def iso_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Built once: json.dumps with options builds a new encoder per call, and this runs once per attempt.
_BODY_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def message_body(event_type: str, event_time: datetime, data: dict[str, Any]) -> bytes:
    """The request body; the same bytes on every retry of the event (the timestamp is the event's)."""
    body = {"type": event_type, "timestamp": iso_timestamp(event_time), "data": data}
    return _BODY_JSON.encode(body).encode()


async def _read_capped(resp: aiohttp.ClientResponse, buffer: bytearray, cap: int) -> bool:
    """Read the body into `buffer` up to `cap` bytes; True when the body ended within them.

    The buffer is the caller's, so what arrived before a deadline is kept when the read is cancelled.
    """
    while len(buffer) <= cap:
        chunk = await resp.content.read(cap + 1 - len(buffer))
        if not chunk:
            return True
        buffer += chunk
    del buffer[cap:]
    return False


async def send(
    session: aiohttp.ClientSession,
    guard: AddressGuard,
    *,
    url: str,
    msg_id: str,
    body: bytes,
    secrets: list[str],
    allow_http: bool,
    timeout_s: float,
    max_body: int,
) -> AttemptResult:
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        # Literal-IP hosts never reach a resolver: decide them here (the socket factory checks again).
        guard.check_url(url, allow_http=allow_http)
    except ForbiddenDestination as exc:
        return AttemptResult(None, elapsed_ms(), error=f"forbidden destination: {exc.address} ({exc.reason})")
    except InvalidUrl as exc:
        return AttemptResult(None, elapsed_ms(), error=f"invalid url: {exc}")

    headers = {
        **signing.sign_headers(secrets, msg_id, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    status: int | None = None
    latency = 0
    retry_after: str | None = None
    data = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                latency = elapsed_ms()
                retry_after = resp.headers.get("Retry-After")
                complete = await _read_capped(resp, data, max_body)
                if not complete:
                    # Drop the rest unread: closing the connection is cheaper than draining a huge body.
                    resp.close()
    except TimeoutError:
        if status is None:
            return AttemptResult(None, elapsed_ms(), error=f"timeout after {timeout_s:g}s")
        # The status arrived in time; a body that dribbles past the deadline is cut off, not a failure.
        return AttemptResult(
            status, latency, error="response body timed out", body=_text(data), retry_after=retry_after
        )
    except aiohttp.ClientError as exc:
        forbidden = forbidden_cause(exc)
        if forbidden is not None:
            return AttemptResult(
                None, elapsed_ms(), error=f"forbidden destination: {forbidden.address} ({forbidden.reason})"
            )
        if status is not None:
            return AttemptResult(status, latency, error=f"response body error: {type(exc).__name__}", body=_text(data))
        return AttemptResult(None, elapsed_ms(), error=f"{type(exc).__name__}: {exc}"[:500])
    except OSError as exc:
        forbidden = forbidden_cause(exc)
        reason = f"forbidden destination: {forbidden.address} ({forbidden.reason})" if forbidden else f"{exc}"
        return AttemptResult(None, elapsed_ms(), error=reason[:500])
    return AttemptResult(status, latency, body=_text(data), retry_after=retry_after)


def _text(data: bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")
