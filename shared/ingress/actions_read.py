"""Read-only actions on the account and the catalog: `services` and `balance`."""

from __future__ import annotations

from shared.db import accounts
from shared.domain.money import format_money
from shared.errors import DependencyDown, InvalidApiKey
from shared.ingress.registry import ActionContext, RawJson, action


@action("services")
async def services(ctx: ActionContext) -> RawJson:
    if not ctx.catalog.loaded:  # the database was down since start: the catalog is unknown, not empty
        raise DependencyDown()
    return RawJson(ctx.catalog.services_json)


@action("balance")
async def balance(ctx: ActionContext) -> dict[str, str]:
    async with ctx.connection() as conn:
        found = await accounts.balance_of(conn, ctx.account_id)
    if found is None:  # the account vanished after its key was cached
        raise InvalidApiKey()
    amount, currency = found
    return {"balance": format_money(amount), "currency": currency}
