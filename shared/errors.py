"""The one error hierarchy: each error knows its HTTP status and its public, one-sentence message.

The api renders any `PanelError` as `{"error": message}` with `status`; anything else is a sanitized 500.
"""

from __future__ import annotations


class PanelError(Exception):
    status: int = 400
    message: str = "Bad request"
    retryable: bool = False

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)


class ValidationFailed(PanelError):
    status = 400


class MissingParameter(ValidationFailed):
    def __init__(self, name: str) -> None:
        super().__init__(f"Missing required parameter: {name}")


class InvalidParameter(ValidationFailed):
    pass


class InvalidAction(ValidationFailed):
    message = "Invalid action"


class PostRequired(ValidationFailed):
    """A secret-bearing action sent with GET: its parameters and answer would sit in URLs and logs."""

    def __init__(self, action: str) -> None:
        super().__init__(f"{action} must be sent with POST: its answer holds a secret")


class ServiceNotFound(ValidationFailed):
    message = "Service not found"


class InsufficientBalance(ValidationFailed):
    message = "Insufficient balance"


class IncorrectOrderId(ValidationFailed):
    message = "Incorrect order ID"


class RefillNotFound(ValidationFailed):
    message = "Refill not found"


class NotEligible(ValidationFailed):
    pass


class InvalidApiKey(PanelError):
    status = 401
    message = "Invalid API key"


class Forbidden(PanelError):
    status = 403
    message = "Forbidden"


class AccountSuspended(Forbidden):
    message = "Account suspended"


class ScopeDenied(Forbidden):
    message = "This API key is not allowed for this action"


class IpNotAllowed(Forbidden):
    message = "This API key is not allowed from this IP address"


class RequestIdConflict(PanelError):
    status = 409
    message = "request_id already used with different parameters"


class BodyTooLarge(PanelError):
    status = 413
    message = "Request body too large"


class RateLimited(PanelError):
    status = 429
    message = "Rate limit exceeded"
    retryable = True


class DependencyDown(PanelError):
    status = 503
    message = "Service temporarily unavailable"
    retryable = True
