"""Typed errors: each carries the API's own message (`{"error": ...}`) and the HTTP status it came with."""

from __future__ import annotations


class PanelflowError(Exception):
    """An answer `{"error": message}` (any status; a `classic` key answers errors with 200)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class InvalidRequest(PanelflowError):
    """400: a missing or malformed parameter, an unknown service, `Insufficient balance`, ..."""


class AuthenticationError(PanelflowError):
    """401: a missing, unknown or revoked key."""


class PermissionDenied(PanelflowError):
    """403: suspended account, key without the action's scope, or a caller outside the key's IP allow-list."""


class Conflict(PanelflowError):
    """409: the request id was used before with other parameters."""


class RateLimited(PanelflowError):
    """429, after the retries: `retry_after` is the server's `Retry-After` in seconds (None when absent)."""

    def __init__(self, message: str, status: int = 429, retry_after: float | None = None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class ServiceUnavailable(PanelflowError):
    """503 after the retries: a dependency of the server is down; safe to retry later with the same request id."""


class ServerError(PanelflowError):
    """500, or an answer that is not the API's JSON."""


class TransportError(PanelflowError):
    """The server could not be reached (connection refused or reset, timeout) after the retries."""


class WebhookVerificationError(PanelflowError):
    """A webhook delivery whose signature, timestamp or headers do not verify: answer it 400/401, ignore it."""


_BY_STATUS: dict[int, type[PanelflowError]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    409: Conflict,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_for(status: int, message: str) -> PanelflowError:
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls(message, status)
    if status >= 500:
        return ServerError(message, status)
    return PanelflowError(message, status)
