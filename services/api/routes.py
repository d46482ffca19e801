"""HTTP handlers: `/api/v2` (parse, authenticate, limit, dispatch to an action); the probes are the ops server's."""

from __future__ import annotations

import json

from aiohttp import web

from services.api.keys import (
    ACTION,
    ACTIONS,
    ADDRESS,
    CATALOG,
    FAILPOINTS,
    KEYS,
    LIMITER,
    PLACER,
    POOL,
    PROFILE,
    RATE_STATES,
    REQUEST_ID,
    SETTINGS,
)
from services.api.reference import add_reference_routes
from shared.errors import InvalidAction, MissingParameter, PostRequired
from shared.ingress import auth
from shared.ingress.params import api_key, read_params
from shared.ingress.registry import POST_ONLY, ActionContext, RawJson
from shared.kit.ops_server import add_probe_routes

# Built once: json.dumps with options builds a new encoder per call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def json_response(value: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_COMPACT_JSON.encode(value).encode(), content_type="application/json")


async def api_v2(request: web.Request) -> web.Response:
    app = request.app
    settings = app[SETTINGS]
    client_ip = app[ADDRESS].of(request)
    limiter = app[LIMITER]
    states = request[RATE_STATES] = []
    # The ip layer counts before anything else, so floods of bad keys are throttled too.
    ip_state = await limiter.check_ip(client_ip)
    if ip_state is not None:
        states.append(ip_state)
    params = await read_params(request, settings.max_body_bytes)
    caller = await app[KEYS].authenticate(api_key(params, request))
    request[PROFILE] = caller.record.profile  # from here on, errors are answered as the key's profile says
    auth.check_address(caller, client_ip)
    states.extend(await limiter.check_caller(caller.record))
    auth.check_account(caller)
    name = params.get("action", "").strip()
    if not name:
        raise MissingParameter("action")
    handler = app[ACTIONS].get(name)
    if handler is None:
        raise InvalidAction()
    if name in POST_ONLY and request.method != "POST":
        raise PostRequired(name)
    request[ACTION] = name
    auth.check_scope(caller, name)
    app[FAILPOINTS].hit("api.handler")
    result = await handler(
        ActionContext(
            settings=settings,
            pool=app[POOL],
            key=caller.record,
            params=params,
            correlation_id=request[REQUEST_ID],
            catalog=app[CATALOG],
            placer=app[PLACER],
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
    )
    if isinstance(result, RawJson):
        return web.Response(body=result.body, content_type="application/json")
    return json_response(result)


def add_routes(app: web.Application) -> None:
    app.router.add_route("POST", "/api/v2", api_v2)
    app.router.add_route("GET", "/api/v2", api_v2)
    # The same /healthz and /readyz as the ops port (app[CHECKS], set at start), errors left out.
    add_probe_routes(app, public=True)
    add_reference_routes(app, app[SETTINGS])
