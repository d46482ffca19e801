"""What the api answers: the success body of each action, the errors by status, the webhook payloads.

The shapes are those the handlers build (shared/ingress/actions_*.py, views.py, catalog.py) and the worker's
events (shared/domain/lifecycle.py, shared/ordering/settlement.py, refills.py): money and counts as strings,
ids as integers.
"""

from __future__ import annotations

import importlib
from typing import Any

from shared.domain.events import EventType
from shared.domain.order_types import ORDER_TYPES
from shared.domain.statuses import OrderState, RefillState, public_order_status, public_refill_status
from shared.errors import PanelError
from shared.ingress.registry import ACTION_MODULES

Schema = dict[str, Any]

MONEY: Schema = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{2,5})?$", "examples": ["0.27819"]}
COUNT_TEXT: Schema = {"type": "string", "pattern": "^[0-9]+$", "examples": ["157"]}
ID: Schema = {"type": "integer", "minimum": 1}
CURRENCY: Schema = {"type": "string", "examples": ["USD"]}
ORDER_STATUSES = sorted({public_order_status(s) for s in OrderState})
REFILL_STATUSES = sorted({public_refill_status(s) for s in RefillState})


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], *, title: str | None = None, description: str | None = None) -> Schema:
    """A JSON object with exactly these properties, all present."""
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if title:
        schema["title"] = title
    if description:
        schema["description"] = description
    return schema


def array(items: Schema, title: str) -> Schema:
    return {"type": "array", "items": items, "title": title}


def _or_error(schema: Schema) -> Schema:
    return {"oneOf": [schema, ref("Error")]}


# A caller's id that is not a number stays the string it sent (batch answers).
BATCH_ID: Schema = {"anyOf": [ID, {"type": "string"}]}
WEBHOOK_SECRET = obj({"webhook": ID, "secret": {"type": "string", "pattern": "^whsec_[A-Za-z0-9+/=]+$"}})

SHARED_SCHEMAS: dict[str, Schema] = {
    "Error": obj({"error": {"type": "string", "examples": ["Missing required parameter: service"]}}, title="Error"),
    "Service": obj(
        {
            "service": ID,
            "name": {"type": "string"},
            "type": {"type": "string", "enum": list(ORDER_TYPES)},
            "category": {"type": "string"},
            "rate": {**MONEY, "description": "Per 1000, or the flat price of a Package type."},
            "min": COUNT_TEXT,
            "max": COUNT_TEXT,
            "refill": {"type": "boolean"},
            "cancel": {"type": "boolean"},
            "dripfeed": {"type": "boolean"},
        },
        title="Service",
    ),
    "OrderStatus": obj(
        {
            "charge": {**MONEY, "description": 'What the order costs after its refunds (a Canceled one: "0").'},
            "start_count": COUNT_TEXT,
            "status": {"type": "string", "enum": ORDER_STATUSES},
            "remains": COUNT_TEXT,
            "currency": CURRENCY,
        },
        title="OrderStatus",
    ),
    "WebhookEndpoint": obj(
        {
            "webhook": ID,
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string"}},
            "enabled": {"type": "boolean"},
            "disabled_reason": {"type": ["string", "null"]},
        },
        title="WebhookEndpoint",
    ),
    "DeliveryAttempt": obj(
        {
            "event": {"type": "string", "format": "uuid"},
            "type": {"type": "string"},
            "attempt": {"type": "integer"},
            "status_code": {"type": ["integer", "null"]},
            "latency_ms": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]},
            "time": {"type": "string", "format": "date-time"},
            "delivery_status": {"type": "string"},
        },
        title="DeliveryAttempt",
    ),
}

# The success bodies of each action (single form first, then the batch form where there is one).
ANSWERS: dict[str, list[Schema]] = {
    "services": [array(ref("Service"), "services")],
    "add": [obj({"order": ID}, title="add")],
    "status": [
        {**ref("OrderStatus"), "title": "status"},
        {
            "type": "object",
            "title": "status (orders)",
            "description": "One entry per id as given: its status, or an error.",
            "additionalProperties": {"oneOf": [ref("OrderStatus"), ref("Error")]},
        },
    ],
    "refill": [
        obj({"refill": ID}, title="refill"),
        array(obj({"order": BATCH_ID, "refill": _or_error(ID)}), "refill (orders)"),
    ],
    "refill_status": [
        obj({"status": {"type": "string", "enum": REFILL_STATUSES}}, title="refill_status"),
        array(
            obj({"refill": BATCH_ID, "status": _or_error({"type": "string", "enum": REFILL_STATUSES})}),
            "refill_status (refills)",
        ),
    ],
    "cancel": [array(obj({"order": BATCH_ID, "cancel": _or_error({"const": 1})}), "cancel")],
    "balance": [obj({"balance": MONEY, "currency": CURRENCY}, title="balance")],
    "webhook.add": [{**WEBHOOK_SECRET, "title": "webhook.add"}],
    "webhook.list": [array(ref("WebhookEndpoint"), "webhook.list")],
    "webhook.delete": [obj({"webhook": ID, "deleted": {"const": True}}, title="webhook.delete")],
    "webhook.test": [obj({"webhook": ID, "event": {"type": "string", "format": "uuid"}}, title="webhook.test")],
    "webhook.deliveries": [array(ref("DeliveryAttempt"), "webhook.deliveries")],
    "webhook.replay": [obj({"replayed": {"type": "integer", "minimum": 0}}, title="webhook.replay")],
    "webhook.rotate": [{**WEBHOOK_SECRET, "title": "webhook.rotate"}],
}

_ORDER_EVENT = {
    "order": ID,
    "status": {"type": "string", "enum": ORDER_STATUSES},
    "charge": MONEY,
    "remains": {"type": "string", "pattern": "^[0-9]+$", "examples": ["157"]},
    "start_count": {"type": "string", "pattern": "^[0-9]+$", "examples": ["3572"]},
    "currency": CURRENCY,
}
# The `data` of each event type a subscriber may receive (the event's payload without its account id).
EVENT_DATA: dict[str, tuple[str, Schema]] = {
    EventType.ORDER_STATUS_CHANGED: ("An order's public status changed.", obj(_ORDER_EVENT)),
    EventType.ORDER_COMPLETED: ("An order reached Completed.", obj(_ORDER_EVENT)),
    EventType.ORDER_PARTIAL: ("An order reached Partial (the rest refunded).", obj(_ORDER_EVENT)),
    EventType.ORDER_CANCELED: ("An order reached Canceled (fully refunded).", obj(_ORDER_EVENT)),
    EventType.REFILL_STATUS_CHANGED: (
        "A refill's status changed.",
        obj({"refill": ID, "order": ID, "status": {"type": "string", "enum": REFILL_STATUSES}}),
    ),
    EventType.BALANCE_LOW: (
        "The balance fell below the account's alert threshold.",
        obj({"balance": MONEY, "threshold": MONEY, "currency": CURRENCY}),
    ),
    EventType.WEBHOOK_TEST: (
        "Sent by `webhook.test` to one endpoint.",
        obj({"webhook": ID, "message": {"type": "string"}}),
    ),
}

STATUS_MEANINGS = {
    400: "Validation: a missing or malformed parameter, unknown service, insufficient balance, quantity out of "
    "range, unknown action, not eligible.",
    401: "Missing, wrong or revoked API key: one identical answer for all three.",
    403: "Account suspended, key without the scope of the action, or caller IP not on the key's allow-list.",
    409: "`request_id` already used with different parameters.",
    413: "Request body over the size limit.",
    429: "A rate limit is depleted; `Retry-After` says when to come back.",
    500: "Our failure: the body is sanitized (the details go to our error tracking).",
    503: "A dependency (the database) is down: safe to retry.",
}


def error_classes() -> list[type[PanelError]]:
    """Every PanelError subclass the api can raise (the action modules define some of their own)."""
    for module in (*ACTION_MODULES, "shared.ingress.ratelimit", "shared.ingress.auth"):
        importlib.import_module(module)
    found: list[type[PanelError]] = []
    pending: list[type[PanelError]] = [PanelError]
    while pending:
        cls = pending.pop(0)
        found.append(cls)
        pending.extend(sorted(cls.__subclasses__(), key=lambda c: (c.__module__, c.__qualname__)))
    return found


def errors_by_status() -> dict[int, list[str]]:
    """Status -> the fixed messages of the errors answered with it (errors that carry their own say none)."""
    by_status: dict[int, list[str]] = {500: ["Internal server error"]}
    for cls in error_classes():
        messages = by_status.setdefault(cls.status, [])
        fixed = cls.__dict__.get("message")
        if fixed and fixed not in messages and cls is not PanelError:
            messages.append(fixed)
    return dict(sorted(by_status.items()))
