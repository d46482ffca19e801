"""The provider simulator's aiohttp app: API v2 at `/api/v2` as an upstream panel speaks it, and `/_sim/*`.

Errors are `{"error": "..."}` with HTTP 200, as real panels answer. Control API for tests:
`POST /_sim/faults` (see faults.py), `GET /_sim/stats`, `POST /_sim/reset` (optional JSON: balance, instant,
pending_s, completion_s, outcome_mix, seed, idempotent: whether a repeated `request_id` answers the order it
created or creates another; default `PANELFLOW_SIM_IDEMPOTENT`), `GET|POST /_sim/catalog` (POST replaces the
catalog with a JSON list of services), `POST /_sim/clock` `{"advance": seconds}`, `GET /_sim/orders/{id}`,
`GET /healthz`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web

from services.provider_sim.faults import FaultPlan, FaultRule, marker_rule
from services.provider_sim.state import SimOrder, SimService, SimState, Timing, link_markers
from shared.domain.bounds import INT8_MAX, parse_client_int
from shared.domain.money import format_money
from shared.domain.order_types import ServiceTerms, draft_order
from shared.errors import InvalidParameter, ValidationFailed
from shared.settings import Settings


@dataclass
class Sim:
    """What the handlers share; replaced wholesale by `/_sim/reset` and `/_sim/faults` (the app is frozen)."""

    settings: Settings
    state: SimState
    plan: FaultPlan


SIM = web.AppKey("sim", Sim)
BATCH_MAX = 100


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def _error(message: str) -> web.Response:
    return _json({"error": message})


def new_state(settings: Settings, overrides: dict[str, Any] | None = None) -> SimState:
    o = overrides or {}
    timing = Timing(
        pending_s=float(o.get("pending_s", settings.sim_pending_s)),
        completion_s=float(o.get("completion_s", settings.sim_completion_s)),
        instant=bool(o.get("instant", settings.sim_instant)),
    )
    return SimState(
        timing=timing,
        outcome_mix=dict(o.get("outcome_mix", settings.sim_outcome_mix)),
        seed=int(o.get("seed", settings.sim_seed)),
        balance=Decimal(str(o.get("balance", settings.sim_balance))),
        currency=settings.currency,
        idempotent=bool(o.get("idempotent", settings.sim_idempotent)),
    )


async def _params(request: web.Request) -> dict[str, str]:
    params = dict(request.query)
    if request.method == "POST" and request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                body = {}
            if isinstance(body, dict):
                params.update({str(k): str(v) for k, v in body.items() if v is not None})
        else:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    if "key" not in params and "X-API-Key" in request.headers:
        params["key"] = request.headers["X-API-Key"]
    return params


async def _sleep_unless_gone(request: web.Request, seconds: float) -> None:
    """Sleep, but stop early once the client hung up: a timed-out caller must not pin the handler."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if request.transport is None or request.transport.is_closing():
            return
        await asyncio.sleep(min(0.05, deadline - loop.time()))


def _number(text: str) -> int | None:
    """An id or count as the contract writes it (ASCII digits, within BIGINT), or None."""
    try:
        return parse_client_int("id", text, maximum=INT8_MAX)
    except InvalidParameter:
        return None


def _drop(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=502)


# --- actions --------------------------------------------------------------------------------------------------


def _add(state: SimState, params: dict[str, str]) -> web.Response | SimOrder:
    """The error answer, or the order. Validates as the contract says, then creates the order."""
    service_id = params.get("service", "")
    number = _number(service_id)
    service = state.catalog.get(number) if number is not None else None
    if service is None:
        return _error("Incorrect service ID")
    terms = ServiceTerms(service.service, service.type, service.rate, service.min, service.max, service.dripfeed)
    try:
        draft = draft_order(params, terms)
    except ValidationFailed as exc:
        message = exc.message
        if "link" in message:
            message = "Incorrect link"
        elif message.startswith("Quantity must be between"):
            quantity = _number(params.get("quantity", "")) or 0
            below = quantity < service.min
            message = (
                f"Quantity less than minimal {service.min}" if below else f"Quantity more than maximal {service.max}"
            )
        return _error(message)
    if state.balance < draft.charge:
        return _error("Not enough funds on balance")
    return state.create_order(
        service,
        link=draft.link or params.get("username", ""),
        quantity=draft.quantity,
        charge=draft.charge,
        request_id=params.get("request_id"),
    )


def _ids(params: dict[str, str], one: str, many: str) -> tuple[list[str], bool] | None:
    if params.get(many):
        return [i.strip() for i in params[many].split(",") if i.strip()][:BATCH_MAX], True
    if params.get(one):
        return [params[one].strip()], False
    return None


async def api_v2(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM]
    state, plan = sim.state, sim.plan
    stats = state.stats
    stats.in_flight += 1
    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
    try:
        params = await _params(request)
        action = params.get("action", "")
        stats.calls[action] += 1
        if params.get("key") != sim.settings.sim_key:
            return _error("Invalid API key")
        rule: FaultRule | None = None
        if action == "add":
            link = params.get("link", "")
            stats.adds += 1
            stats.adds_per_link[link] += 1
            if params.get("request_id"):
                stats.adds_per_request_id[params["request_id"]] += 1
            rule = marker_rule(link_markers(link))
        rule = rule or plan.pick(action, state.rng)
        if rule is not None:
            stats.faults_fired[rule.fault] += 1
            early = await _fault_before(request, rule, action)
            if early is not None:
                return early
        return await _dispatch(request, state, plan, action, params, rule)
    finally:
        stats.in_flight -= 1


async def _fault_before(request: web.Request, rule: FaultRule, action: str) -> web.StreamResponse | None:
    """Faults that answer before (or instead of) the action; None lets the action run."""
    if rule.fault == "latency":
        await asyncio.sleep(rule.ms / 1000)
    elif rule.fault == "timeout" and not (action == "add" and rule.create):
        await _sleep_unless_gone(request, rule.seconds)
    elif rule.fault == "http_error":
        return web.Response(status=rule.status, text="<html><body>Bad Gateway</body></html>", content_type="text/html")
    elif rule.fault == "garbage":
        return web.Response(text="<html><body>Database error</body></html>", content_type="text/html")
    elif rule.fault == "out_of_funds":
        return _error("Not enough funds on balance")
    elif rule.fault == "incorrect_link":
        return _error("Incorrect link")
    elif rule.fault == "drop" or (rule.fault == "ghost" and action != "add"):
        return _drop(request)
    return None


async def _dispatch(
    request: web.Request, state: SimState, plan: FaultPlan, action: str, params: dict[str, str], rule: FaultRule | None
) -> web.StreamResponse:
    if action == "services":
        return _json([s.public() for s in state.catalog.values()])
    if action == "balance":
        return _json({"balance": format_money(state.balance), "currency": state.currency})
    if action == "add":
        order = _add(state, params)
        if isinstance(order, web.Response):
            return order
        if rule is not None and rule.fault == "ghost":
            return web.Response(status=502, text="Bad Gateway") if rule.mode == "502" else _drop(request)
        if rule is not None and rule.fault == "timeout":
            await _sleep_unless_gone(request, rule.seconds)
        return _json({"order": order.id})
    if action == "status":
        return _status(state, plan, params)
    if action == "refill":
        return _refill(state, params)
    if action == "refill_status":
        return _refill_status(state, plan, params)
    if action == "cancel":
        ids = _ids(params, "order", "orders")
        if ids is None:
            return _error("Incorrect request")
        answers = []
        for raw in ids[0]:
            error = state.cancel(n) if (n := _number(raw)) is not None else "Incorrect order ID"
            answers.append(
                {
                    "order": _number(raw) if _number(raw) is not None else raw,
                    "cancel": 1 if error is None else {"error": error},
                }
            )
        return _json(answers)
    return _error("Invalid action")


def _status(state: SimState, plan: FaultPlan, params: dict[str, str]) -> web.Response:
    ids = _ids(params, "order", "orders")
    if ids is None:
        return _error("Incorrect request")
    wanted, batch = ids
    state.stats.status_calls += 1
    state.stats.status_ids_total += len(wanted)
    state.stats.status_ids_per_call.append(len(wanted))
    entries: dict[str, Any] = {}
    for raw in wanted:
        order = state.orders.get(n) if (n := _number(raw)) is not None else None
        entries[raw] = {"error": "Incorrect order ID"} if order is None else plan.order_entry(state.status_body(order))
    if batch:
        return _json(entries)
    return _json(entries[wanted[0]])


def _refill(state: SimState, params: dict[str, str]) -> web.Response:
    ids = _ids(params, "order", "orders")
    if ids is None:
        return _error("Incorrect request")
    wanted, batch = ids
    answers: list[dict[str, Any]] = []
    for raw in wanted:
        result = state.refill(n) if (n := _number(raw)) is not None else "Incorrect order ID"
        value: Any = {"error": result} if isinstance(result, str) else result.id
        answers.append({"order": _number(raw) if _number(raw) is not None else raw, "refill": value})
    if batch:
        return _json(answers)
    only = answers[0]["refill"]
    return _json(only if isinstance(only, dict) else {"refill": only})


def _refill_status(state: SimState, plan: FaultPlan, params: dict[str, str]) -> web.Response:
    ids = _ids(params, "refill", "refills")
    if ids is None:
        return _error("Incorrect request")
    wanted, batch = ids
    answers: list[dict[str, Any]] = []
    for raw in wanted:
        refill = state.refills.get(n) if (n := _number(raw)) is not None else None
        status: Any = (
            {"error": "Refill not found"} if refill is None else plan.refill_entry(state.refill_status(refill))
        )
        answers.append({"refill": _number(raw) if _number(raw) is not None else raw, "status": status})
    if batch:
        return _json(answers)
    only = answers[0]["status"]
    return _json(only if isinstance(only, dict) else {"status": only})


# --- control API ----------------------------------------------------------------------------------------------


async def _control_body(request: web.Request) -> Any:
    if not request.body_exists:
        return {}
    try:
        return await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"body is not JSON: {exc}"})) from exc


async def set_faults(request: web.Request) -> web.Response:
    try:
        request.app[SIM].plan = FaultPlan.from_json(await _control_body(request))
    except (ValueError, TypeError, AttributeError) as exc:
        return _json({"error": str(exc)}, status=400)
    return _json({"ok": True})


async def get_stats(request: web.Request) -> web.Response:
    state = request.app[SIM].state
    return _json({**state.stats.public(), "idempotent": state.idempotent})


async def reset(request: web.Request) -> web.Response:
    overrides = await _control_body(request)
    sim = request.app[SIM]
    sim.state = new_state(sim.settings, overrides if isinstance(overrides, dict) else {})
    sim.plan = FaultPlan()
    return _json({"ok": True})


async def catalog(request: web.Request) -> web.Response:
    state = request.app[SIM].state
    if request.method == "POST":
        raw = await _control_body(request)
        try:
            state.set_catalog([SimService.from_json(entry) for entry in raw])
        except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
            return _json({"error": f"bad catalog: {exc!r}"}, status=400)
    return _json([s.public() for s in state.catalog.values()])


async def clock(request: web.Request) -> web.Response:
    body = await _control_body(request)
    state = request.app[SIM].state
    state.clock_offset += float(body.get("advance", 0))
    return _json({"offset": state.clock_offset})


async def order_detail(request: web.Request) -> web.Response:
    state = request.app[SIM].state
    order = state.orders.get(int(request.match_info["order_id"]))
    if order is None:
        return _json({"error": "Incorrect order ID"}, status=404)
    status, remains = state.order_status(order)
    return _json(
        {"order": order.id, "service": order.service.service, "link": order.link, "quantity": order.quantity,
         "charge": format_money(order.charge), "outcome": order.outcome, "status": status, "remains": remains}
    )  # fmt: skip


async def healthz(_request: web.Request) -> web.Response:
    return _json({"ok": True})


def create_app(settings: Settings) -> web.Application:
    app = web.Application()
    app[SIM] = Sim(settings=settings, state=new_state(settings), plan=FaultPlan())
    app.router.add_route("GET", "/api/v2", api_v2)
    app.router.add_route("POST", "/api/v2", api_v2)
    app.router.add_post("/_sim/faults", set_faults)
    app.router.add_get("/_sim/stats", get_stats)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_route("*", "/_sim/catalog", catalog)
    app.router.add_post("/_sim/clock", clock)
    app.router.add_get("/_sim/orders/{order_id:\\d+}", order_detail)
    app.router.add_get("/healthz", healthz)
    return app
