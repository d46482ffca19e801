"""The one middleware that binds the request id, renders every error as `{"error": msg}` and logs the request."""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable

import sentry_sdk
import structlog
from aiohttp import web
from prometheus_client import Counter, Histogram

from services.api.keys import ACTION, PROFILE, RATE_STATES, REQUEST_ID
from shared.auth.keys import CLASSIC
from shared.errors import BodyTooLarge, DependencyDown, PanelError
from shared.ingress.failures import database_unavailable
from shared.ingress.ratelimit import LayerState, RateLimitExceeded, headers, tightest
from shared.ingress.registry import ACTIONS
from shared.observability import metrics

log = structlog.get_logger("services.api")

_REQUEST_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")
_HTTP_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: BodyTooLarge.message,
}
INTERNAL_ERROR = "Internal server error"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"error": message}).encode(), content_type="application/json")


# Generated request ids: 32 hex digits, a random per-process half and a counter half. Unique across processes
# and restarts without a system call per request (they correlate log lines; they are not secrets).
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(4)))


def _request_id(header: str | None) -> str:
    if header and _REQUEST_ID_RE.match(header):
        return header
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = _request_id(request.headers.get("X-Request-ID"))
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    # The request id is the correlation id of everything this request causes (outbox, messages, worker, webhooks).
    # Bound and reset by hand: the context manager costs three times as much on this path.
    tokens = structlog.contextvars.bind_contextvars(request_id=request_id, correlation_id=request_id)
    try:
        denied = None
        failure: Exception | None = None
        try:
            response = await handler(request)
        except RateLimitExceeded as exc:
            denied = exc.state
            response = error_response(exc.status, exc.message)
        except PanelError as exc:
            response = error_response(exc.status, exc.message)
        except web.HTTPException as exc:
            response = error_response(exc.status, _HTTP_MESSAGES.get(exc.status, exc.reason))
            if exc.status == 405:
                response.headers.update({k: v for k, v in exc.headers.items() if k == "Allow"})
        except Exception as exc:
            if database_unavailable(exc):
                response = error_response(DependencyDown.status, DependencyDown.message)
            else:
                response = error_response(500, INTERNAL_ERROR)
            failure = exc
        now = time.time()
        if denied is not None:
            response.headers.update(headers(denied, denied=True, now=now))
        else:
            state = tightest(request.get(RATE_STATES, []))
            if state is not None:
                response.headers.update(headers(state, now=now))
        response.headers["X-Request-ID"] = request_id
        # Answers hold balances, orders and (webhook.add/rotate) secrets: no cache anywhere may keep them.
        response.headers["Cache-Control"] = "no-store"
        status = response.status
        _log(request, status, started, failure)
        _count(request, status, started, denied)
        if status >= 400 and status != 429 and request.get(PROFILE) == CLASSIC:
            # Classic panels answer errors with 200 and {"error"}; a 429 keeps its status for Retry-After. The
            # status it would have had goes along, for clients that can tell a 503 (retry) from a 400.
            response.headers["X-Error-Status"] = str(status)
            response.set_status(200)
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
    return response


@functools.cache
def _api_metrics(action: str, status: int) -> tuple[Counter, Histogram]:
    # prometheus-client's labels() lookup costs more than the increment: keep the children per label set.
    return metrics.API_REQUESTS.labels(action=action, status=str(status)), metrics.API_LATENCY.labels(action=action)


def _count(request: web.Request, status: int, started: float, denied: LayerState | None) -> None:
    name = request.get(ACTION)
    if name is None and request.path != "/api/v2":
        return  # probes and scrapes are not API traffic
    action = metrics.action_label(name, ACTIONS.keys())
    requests, latency = _api_metrics(action, status)
    requests.inc()
    latency.observe(time.perf_counter() - started)
    if denied is not None:
        metrics.API_RATE_LIMITED.labels(layer=denied.layer).inc()
    elif status == 409:
        metrics.API_CONFLICTS.labels(action=action).inc()


def _log(request: web.Request, status: int, started: float, failure: Exception | None) -> None:
    if status < 400 and not log.is_enabled_for(logging.DEBUG):
        return  # the hot path: no fields to build for a line nobody writes
    fields = {
        "method": request.method,
        "path": request.path,
        "action": request.get(ACTION),
        "status": status,
        "ms": round((time.perf_counter() - started) * 1000, 2),
    }
    if status == 500:
        log.error("request_failed", **fields, exc_info=failure)
        sentry_sdk.capture_exception(failure)
    elif status == 503:
        log.warning("request_dependency_down", **fields, error=repr(failure) if failure else None)
    elif status >= 400:
        log.info("request", **fields)
    else:
        # Successful calls are the hot path: one line each would cost more than the rest of the request.
        log.debug("request", **fields)
