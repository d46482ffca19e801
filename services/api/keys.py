"""Typed keys of the api's application and request state."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from shared.failpoints import Failpoints
from shared.ingress.auth import KeyCache
from shared.ingress.catalog import Catalog
from shared.ingress.client_address import ClientAddress
from shared.ingress.ratelimit import LayerState, RateLimiter
from shared.ingress.registry import Handler
from shared.messaging.relay import OutboxRelay
from shared.ordering.placement import Placer
from shared.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
KEYS = web.AppKey("keys", KeyCache)
CATALOG = web.AppKey("catalog", Catalog)
LIMITER = web.AppKey("limiter", RateLimiter)
PLACER = web.AppKey("placer", Placer)
RELAY = web.AppKey("relay", OutboxRelay)
ADDRESS = web.AppKey("address", ClientAddress)
FAILPOINTS = web.AppKey("failpoints", Failpoints)
ACTIONS = web.AppKey("actions", dict[str, Handler])

REQUEST_ID = web.RequestKey("request_id", str)
ACTION = web.RequestKey("action", str)
# The compatibility profile of the authenticated key (shared.auth.keys.PROFILES); absent before authentication.
PROFILE = web.RequestKey("profile", str)
# The rate-limit layers this request was counted in: the tightest one goes into the response headers.
RATE_STATES = web.RequestKey("rate_states", list[LayerState])
