"""The action registry of `/api/v2`: one async handler per `action` name.

How to add actions (e.g. the `webhook.*` actions from `shared/ingress/actions_webhooks.py`):

    from shared.ingress.registry import ActionContext, action

    @action("webhook.list")
    async def webhook_list(ctx: ActionContext) -> object:
        async with ctx.connection() as conn:
            ...
        return [...]  # any JSON-serialisable value (Decimal as str); raise a shared.errors.PanelError on error

- `@action(name, post_only=True)` for an action whose answer holds a secret: it is refused over GET.
- `load_actions()` imports every module of `ACTION_MODULES` once, at app start; a module that does not exist
  is an error (`MissingActionModule`, naming it), so a typo cannot silently drop its actions. Registering a
  name twice is an error.
- The handler runs after authentication, the rate limits, the account/IP checks and the scope check: the scope
  of an action is `shared.auth.keys.ACTION_SCOPES[name]` (an action without a scope there is refused), so put a
  new action's scope there too.
- `ActionContext` carries everything a handler may use: settings, pool, the caller's key record (account id,
  tier, currency, profile, ...), the merged request parameters, the `Idempotency-Key` header, the correlation
  id (= the request id), the catalog cache and the order placer. Handlers never see the aiohttp request.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolAcquireContext

from shared.db.keys import KeyRecord
from shared.errors import MissingParameter
from shared.ingress.catalog import Catalog
from shared.ordering.placement import Placer
from shared.settings import Settings

ACTION_MODULES = (
    "shared.ingress.actions_read",
    "shared.ingress.actions_orders",
    "shared.ingress.actions_refill",
    "shared.ingress.actions_cancel",
    "shared.ingress.actions_webhooks",
)


@dataclass(frozen=True, slots=True)
class ActionContext:
    settings: Settings
    pool: asyncpg.Pool
    key: KeyRecord
    params: Mapping[str, str]
    correlation_id: str
    catalog: Catalog
    placer: Placer
    idempotency_key: str | None = None  # the `Idempotency-Key` header, when sent

    @property
    def account_id(self) -> int:
        return self.key.account_id

    def connection(self) -> PoolAcquireContext:
        """A pooled connection; waiting longer than `db_acquire_timeout_s` raises TimeoutError (a 503)."""
        return self.pool.acquire(timeout=self.settings.db_acquire_timeout_s)

    def param(self, name: str) -> str:
        """A required parameter, stripped; `Missing required parameter: <name>` when absent or blank."""
        value = self.params.get(name, "").strip()
        if not value:
            raise MissingParameter(name)
        return value


@dataclass(frozen=True, slots=True)
class RawJson:
    """A handler result that is already encoded JSON (e.g. the cached `services` list)."""

    body: bytes


Handler = Callable[[ActionContext], Awaitable[Any]]
ACTIONS: dict[str, Handler] = {}
# Actions whose answer holds a secret: refused over GET (a 400 saying to use POST).
POST_ONLY: set[str] = set()


def action(name: str, *, post_only: bool = False) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if name in ACTIONS and ACTIONS[name] is not handler:
            raise RuntimeError(f"action {name!r} registered twice")
        ACTIONS[name] = handler
        if post_only:
            POST_ONLY.add(name)
        return handler

    return register


class MissingActionModule(RuntimeError):
    def __init__(self, module: str) -> None:
        super().__init__(
            f"action module {module!r} not found: fix its name in ACTION_MODULES (shared/ingress/registry.py)"
        )
        self.module = module


def load_actions(modules: Sequence[str] | None = None) -> dict[str, Handler]:
    """Every registered action, after importing `modules` (default `ACTION_MODULES`); MissingActionModule for
    a module that does not exist (an import error inside one that does propagates as it is)."""
    for module in ACTION_MODULES if modules is None else modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (module == exc.name or module.startswith(f"{exc.name}.")):
                raise
            raise MissingActionModule(module) from None
    return ACTIONS
