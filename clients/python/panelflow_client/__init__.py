"""panelflow API v2 client: `Client` (blocking) and `AsyncClient` (asyncio), typed errors, webhook verification."""

from panelflow_client._core import BATCH_MAX, Balance, OrderStatus, RetryPolicy, Service
from panelflow_client.client import AsyncClient, Client
from panelflow_client.errors import (
    AuthenticationError,
    Conflict,
    InvalidRequest,
    PanelflowError,
    PermissionDenied,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TransportError,
    WebhookVerificationError,
)
from panelflow_client.webhooks import verify_webhook

__all__ = [
    "BATCH_MAX",
    "AsyncClient",
    "AuthenticationError",
    "Balance",
    "Client",
    "Conflict",
    "InvalidRequest",
    "OrderStatus",
    "PanelflowError",
    "PermissionDenied",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "Service",
    "ServiceUnavailable",
    "TransportError",
    "WebhookVerificationError",
    "verify_webhook",
]
