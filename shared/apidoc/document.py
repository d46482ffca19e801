"""Build the OpenAPI 3.1 document of `/api/v2` from the action registry, the order-type table, the error classes
and the event types; refuse to build when one of them has an entry the tables of `shared.apidoc` do not describe.
"""

from __future__ import annotations

import json
from typing import Any

from shared.apidoc import parameters
from shared.apidoc.answers import ANSWERS, EVENT_DATA, SHARED_SCHEMAS, STATUS_MEANINGS, Schema, errors_by_status, ref
from shared.apidoc.request_schemas import query_parameters, request_schemas
from shared.auth.keys import ACTION_SCOPES
from shared.domain.events import SUBSCRIBER_EVENTS
from shared.domain.order_types import BUILDERS
from shared.ingress.registry import load_actions
from shared.settings import Settings

OPENAPI_VERSION = "3.1.0"
TITLE = "panelflow API v2"
VERSION = "2"


class Undescribed(Exception):
    """The code has an action, order type or event the document's tables do not describe (or the reverse)."""


def check_coverage() -> None:
    pairs = (
        ("action", set(load_actions()), set(parameters.ACTIONS)),
        ("action answer", set(parameters.ACTIONS), set(ANSWERS)),
        ("order type", set(BUILDERS), set(parameters.ORDER_TYPES)),
        ("event type", {str(e) for e in SUBSCRIBER_EVENTS}, {str(e) for e in EVENT_DATA}),
    )
    for what, in_code, described in pairs:
        if in_code != described:
            missing, extra = sorted(in_code - described), sorted(described - in_code)
            raise Undescribed(f"{what}s not described: {missing}; described but not in the code: {extra}")


RATE_HEADERS = {
    "X-RateLimit-Limit": "Calls per minute of the tightest rate-limit layer (ip, key or tier).",
    "X-RateLimit-Remaining": "Calls left in that layer now.",
    "X-RateLimit-Reset": "Unix time (seconds) when that layer is full again (or, on a 429, allows the next call).",
}
DENIED_HEADERS = {
    "X-RateLimit-DeniedBy": "The layer that refused: ip, key or tier.",
    "Retry-After": "Seconds to wait before calling again.",
}
REQUEST_ID_HEADER = (
    "The request id: the caller's `X-Request-ID` when it is 1-128 printable ASCII characters, else ours."
)


def _header(description: str, schema: Schema) -> Schema:
    return {"description": description, "schema": schema}


def _headers(*, denied: bool) -> dict[str, Schema]:
    headers = {
        "X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"},
        "Cache-Control": {"$ref": "#/components/headers/Cache-Control"},
    }
    for name in RATE_HEADERS:
        headers[name] = {"$ref": f"#/components/headers/{name}"}
    if denied:
        for name in DENIED_HEADERS:
            headers[name] = {"$ref": f"#/components/headers/{name}"}
    return headers


CLASSIC_ERROR: Schema = {
    **ref("Error"),
    "description": "Keys of the classic profile get every error but 429 with HTTP 200, as classic panels answer.",
}


def _responses() -> dict[str, Schema]:
    success = [variant for action in parameters.ACTIONS for variant in ANSWERS[action]]
    responses: dict[str, Schema] = {
        "200": {
            "description": "The action's answer (its shape depends on `action`; the batch forms answer per id).",
            "headers": {
                **_headers(denied=False),
                "X-Error-Status": {"$ref": "#/components/headers/X-Error-Status"},
            },
            "content": {"application/json": {"schema": {"anyOf": [*success, CLASSIC_ERROR]}}},
        }
    }
    for status in errors_by_status():
        responses[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    return responses


def _error_responses() -> dict[str, Schema]:
    responses: dict[str, Schema] = {}
    for status, messages in errors_by_status().items():
        examples = "; ".join(f"`{m}`" for m in messages)
        responses[f"Error{status}"] = {
            "description": f"{STATUS_MEANINGS.get(status, '')} Messages: {examples or 'one sentence'}.".strip(),
            "headers": _headers(denied=status == 429),
            "content": {"application/json": {"schema": ref("Error")}},
        }
    return responses


def _operation(method: str, settings: Settings) -> Schema:
    operation: Schema = {
        "operationId": f"apiV2{method.capitalize()}",
        "summary": "Call an action (GET: parameters in the query string)"
        if method == "get"
        else "Call an action (POST: form, multipart or JSON body)",
        "tags": ["API v2"],
        "parameters": [
            {
                "name": "X-Request-ID",
                "in": "header",
                "required": False,
                "description": "Your id of this request, echoed in the answer and our logs (1-128 printable ASCII).",
                "schema": {"type": "string"},
            },
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "`add`: the request id by its other name (1-128 printable ASCII); given with a "
                "different `request_id` it is a 400.",
                "schema": {"type": "string"},
            },
        ],
        "responses": _responses(),
    }
    if method == "get":
        operation["parameters"] = query_parameters(settings) + operation["parameters"]
        return operation
    form, json_ref = ref("ApiRequestForm"), ref("ApiRequestJson")
    operation["requestBody"] = {
        "required": True,
        "description": "Parameters may also come in the query string; the body wins. "
        f"At most {settings.max_body_bytes:,} bytes.",
        "content": {
            "application/x-www-form-urlencoded": {"schema": form},
            "multipart/form-data": {"schema": form},
            "application/json": {"schema": json_ref},
        },
    }
    return operation


def _hook_header(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "header", "required": True, "schema": schema, "description": description}


def _webhooks() -> dict[str, Schema]:
    digits = {"type": "string", "pattern": "^[0-9]+$"}
    parameters_ = [
        _hook_header("webhook-id", {"type": "string", "format": "uuid"},
                     "The event id: the same on every retry and replay. Dedupe on it."),
        _hook_header("webhook-timestamp", digits, "Unix seconds of this attempt."),
        _hook_header("webhook-signature", {"type": "string"},
                     "`v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` keyed with the "
                     "base64-decoded secret after `whsec_`; two space-separated signatures while a secret rotates."),
    ]  # fmt: skip
    hooks: dict[str, Schema] = {}
    for event in SUBSCRIBER_EVENTS:
        description, data = EVENT_DATA[event]
        body = {
            "type": "object",
            "properties": {
                "type": {"const": str(event)},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": data,
            },
            "required": ["type", "timestamp", "data"],
            "additionalProperties": False,
        }
        hooks[str(event)] = {
            "post": {
                "operationId": "webhook_" + str(event).replace(".", "_"),
                "summary": str(event),
                "description": f"{description} Signed per Standard Webhooks; retried with backoff until a 2xx.",
                "tags": ["Webhooks"],
                "security": [],  # signed with the endpoint's secret (headers below), not an API key
                "parameters": parameters_,
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {"2XX": {"description": "Received; any other answer (or none) is retried."}},
            }
        }
    return hooks


def _overview() -> str:
    lines = [
        'The reseller API of panelflow: the "SMM panel API v2" protocol on one endpoint, `/api/v2`.',
        "Every parameter may come in the query string (GET) or a form, multipart or JSON body (POST); "
        'the body wins. Every answer is JSON, errors are `{"error": "..."}`. `webhook.add` and `webhook.rotate` '
        "answer a secret: they are refused over GET (400).",
        'Money is a decimal string (`"0.27819"`), ids are integers.',
        "",
        "Keys have a profile: `strict` (the default; what this document describes) or `classic`, for programs "
        "written against classic panels: `add` without a request id is accepted, and every error but 429 is "
        'answered with HTTP 200 and `{"error"}`.',
        "",
        "| action | key scope | what it does |",
        "|---|---|---|",
    ]
    for action, doc in parameters.ACTIONS.items():
        lines.append(f"| `{action}` | `{ACTION_SCOPES.get(action, '?')}` | {doc.summary} |")
    lines += ["", "Order types (the service's `type` decides what `add` takes):", "",
              "| type | parameters (optional) | charged |", "|---|---|---|"]  # fmt: skip
    for order_type, type_doc in parameters.ORDER_TYPES.items():
        names = ", ".join(f"`{p.name}`" if p.required else f"(`{p.name}`)" for p in type_doc.params)
        lines.append(f"| {order_type} | {names} | {type_doc.charged} |")
    return "\n".join(lines)


def build(settings: Settings | None = None) -> dict[str, Any]:
    """The document; `settings` gives the documented limits (the defaults when None)."""
    settings = settings or Settings()
    check_coverage()
    schemas: dict[str, Schema] = dict(SHARED_SCHEMAS)
    schemas.update(request_schemas(settings, json_body=False))
    schemas.update(request_schemas(settings, json_body=True))
    headers = {"X-Request-ID": _header(REQUEST_ID_HEADER, {"type": "string"})}
    headers["Cache-Control"] = _header("Always `no-store`: answers hold balances and secrets.", {"const": "no-store"})
    headers.update(
        {name: _header(text, {"type": "string", "pattern": "^[0-9]+$"}) for name, text in RATE_HEADERS.items()}
    )
    headers["X-RateLimit-DeniedBy"] = _header(
        DENIED_HEADERS["X-RateLimit-DeniedBy"], {"type": "string", "enum": ["ip", "key", "tier"]}
    )
    headers["X-Error-Status"] = _header(
        "Keys of the classic profile: on an error answered with 200, the status it stands for.",
        {"type": "string", "pattern": "^[1-5][0-9][0-9]$"},
    )
    headers["Retry-After"] = _header(DENIED_HEADERS["Retry-After"], {"type": "string", "pattern": "^[0-9]+$"})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": TITLE, "version": VERSION, "description": _overview()},
        "servers": [{"url": "/", "description": "This api"}],
        "security": [{"ApiKeyHeader": []}, {"ApiKeyQuery": []}],
        "tags": [
            {"name": "API v2", "description": "The one endpoint and its actions."},
            {"name": "Webhooks", "description": "What panelflow POSTs to your subscribed endpoints."},
        ],
        "paths": {"/api/v2": {"get": _operation("get", settings), "post": _operation("post", settings)}},
        "webhooks": _webhooks(),
        "components": {
            "schemas": schemas,
            "responses": _error_responses(),
            "headers": headers,
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "ApiKeyQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "key",
                    "description": "`key` in the query string or, as well, in the body.",
                },
            },
        },
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
