"""The peer: `add` the way a typical SMM panel builds it, in panelflow's own stack, for `bench.run` to compare.

`python -m bench.peer_app --port P` (PANELFLOW_DATABASE_URL, PANELFLOW_AMQP_URL, PANELFLOW_AMQP_PREFIX,
PANELFLOW_DB_POOL_MAX as for the api). One transaction per request: look up an earlier order of the request_id,
lock the account's row, insert the order, debit the balance, write the ledger row, commit; then publish one
`order.placed` message for the order to RabbitMQ (persistent, mandatory, publisher confirms: a panel must know
the worker will hear of it) and answer `{"order": N}`. aiohttp + asyncpg + aio-pika on uvloop, like the api.

What it shares with the api, so that the comparison measures the design and nothing else: the same schema (the
same rows, constraints, indexes and triggers), the same parameter parsing and validation (`read_params`,
`draft_order`, the params fingerprint), the in-process key cache and catalog (a typical panel reads both from
the database on every request: the peer is faster than one), the same pool size and the same broker topology
(a quorum queue). What it lacks, by design: group commit and the outbox (its publish is in the request path,
and an order whose publish fails after its commit is never heard of), rate limits (lifted in the benchmark
for the api too), the request log line and metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import uvloop
from aiohttp import web

from shared.db.pool import create_pool
from shared.domain.events import EventType, OrderPlaced
from shared.domain.order_types import draft_order, fingerprint
from shared.errors import (
    AccountSuspended,
    InsufficientBalance,
    MissingParameter,
    PanelError,
    RequestIdConflict,
    ServiceNotFound,
)
from shared.ingress.auth import KeyCache
from shared.ingress.catalog import Catalog
from shared.ingress.params import api_key, parse_id, read_params
from shared.messaging import topology
from shared.messaging.connection import connect as connect_amqp
from shared.messaging.envelope import build_message
from shared.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
KEYS = web.AppKey("keys", KeyCache)
CATALOG = web.AppKey("catalog", Catalog)
EXCHANGE = web.AppKey("exchange", aio_pika.abc.AbstractExchange)

FIND_EXISTING = "SELECT id, params_hash FROM orders WHERE account_id = $1 AND request_id = $2"
LOCK_ACCOUNT = "SELECT balance, status FROM accounts WHERE id = $1 FOR UPDATE"
INSERT_ORDER = """
INSERT INTO orders (account_id, request_id, params_hash, service_id, type, link, quantity, params, rate, charge,
                    currency, correlation_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12)
RETURNING id
"""
DEBIT = "UPDATE accounts SET balance = balance - $2 WHERE id = $1"
LEDGER = "INSERT INTO ledger (account_id, kind, amount, order_id) VALUES ($1, 'reserve', $2, $3)"

_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), default=str)


def _error(exc: PanelError) -> web.Response:
    return web.json_response({"error": exc.message}, status=exc.status)


async def api_v2(request: web.Request) -> web.Response:
    app = request.app
    try:
        params = await read_params(request, app[SETTINGS].max_body_bytes)
        caller = await app[KEYS].authenticate(api_key(params, request))
        if params.get("action") != "add":
            return web.json_response({"error": "Invalid action"}, status=400)
        terms = app[CATALOG].terms(parse_id(params.get("service", ""), ServiceNotFound))
        if terms is None:
            raise ServiceNotFound()
        draft = draft_order(params, terms)
        request_id = params.get("request_id")
        if not request_id:
            raise MissingParameter("request_id")
        params_hash = fingerprint(params)
        account_id = caller.record.account_id
        correlation_id = uuid.uuid4().hex
        async with app[POOL].acquire() as conn, conn.transaction():
            existing = await conn.fetchrow(FIND_EXISTING, account_id, request_id)
            if existing is not None:
                if bytes(existing["params_hash"]) != params_hash:
                    raise RequestIdConflict()
                return web.Response(body=b'{"order":%d}' % existing["id"], content_type="application/json")
            account = await conn.fetchrow(LOCK_ACCOUNT, account_id)
            if account is None or account["status"] != "active":
                raise AccountSuspended()
            if account["balance"] < draft.charge:
                raise InsufficientBalance()
            order_id: int = await conn.fetchval(
                INSERT_ORDER, account_id, request_id, params_hash, draft.service_id, draft.type, draft.link,
                draft.quantity, _COMPACT_JSON.encode(draft.params), draft.rate, draft.charge, caller.record.currency,
                correlation_id,
            )  # fmt: skip
            await conn.execute(DEBIT, account_id, draft.charge)
            await conn.execute(LEDGER, account_id, -draft.charge, order_id)
        event_id = uuid.uuid4()
        message = build_message(
            event_id=event_id,
            event_type=EventType.ORDER_PLACED,
            payload_json=_COMPACT_JSON.encode(OrderPlaced((order_id,)).to_payload()),
            correlation_id=correlation_id,
        )
        await app[EXCHANGE].publish(message, routing_key=EventType.ORDER_PLACED, mandatory=True)
        return web.Response(body=b'{"order":%d}' % order_id, content_type="application/json")
    except PanelError as exc:
        return _error(exc)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = app[POOL] = await create_pool(settings)
    app[KEYS] = KeyCache(pool, settings)
    catalog = app[CATALOG] = Catalog(pool, settings)
    await catalog.load()
    connection = await connect_amqp(settings.amqp_url, timeout=10, name="bench-peer")
    channel = await connection.channel(publisher_confirms=True)
    app[EXCHANGE] = await topology.declare(channel, settings)
    yield
    await connection.close()
    await pool.close()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources)
    app.router.add_post("/api/v2", api_v2)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8098)
    args = parser.parse_args()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(create_app(Settings()), host=args.host, port=args.port, loop=loop, access_log=None, print=None)


if __name__ == "__main__":
    main()
