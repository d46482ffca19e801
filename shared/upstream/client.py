"""The client of one upstream provider (another panel speaking API v2), as panels in the wild speak it: its calls.

Each call is a form POST of `key` + `action` + parameters (`shared.upstream.transport`: the session, the address
guard, timeouts, slots, the reply cap and the circuit breaker); JSON answers with errors in a 200 (or a 4xx);
every answer normalised by `shared.upstream.normalize`. `add` and `refill` never raise for upstream trouble: they
return a classified result (see `shared.upstream.results`) and never retry — the worker decides. The other calls
raise `UpstreamError`s. `ProviderClients` keeps one client per provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.settings import Settings
from shared.upstream import normalize
from shared.upstream.breaker import CircuitBreaker
from shared.upstream.failures import CallFailed
from shared.upstream.results import (
    Accepted,
    AddResult,
    Balance,
    IdError,
    NotSent,
    OrderReport,
    RefillAccepted,
    RefillReport,
    RefillResult,
    Refused,
    Unknown,
    UpstreamBadReply,
    UpstreamRejected,
    UpstreamService,
    UpstreamUnreachable,
)
from shared.upstream.transport import BeforeSend, ProviderTransport, Reply

BATCH_MAX = 100  # ids per status / refill_status / cancel call, as the contract allows
# The longest upstream order or refill id we store and follow.
PROVIDER_ID_MAX = 128
# Answers that mean "your call was turned away before the order was looked at".
_TURNED_AWAY = frozenset({401, 403, 429})


@dataclass(frozen=True)
class ServicesReply:
    services: list[UpstreamService]
    skipped: list[str] = field(default_factory=list)  # entries that cannot be sold (unknown type, bad numbers)


class UpstreamClient:
    """One provider: `url` is its full API v2 endpoint (e.g. `https://panel.example/api/v2`)."""

    def __init__(self, *, url: str, key: str, settings: Settings, name: str = "") -> None:
        self.transport = ProviderTransport(url=url, key=key, settings=settings, name=name)
        self.url = url
        self.name = self.transport.name

    @property
    def breaker(self) -> CircuitBreaker:
        return self.transport.breaker

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # --- the calls -------------------------------------------------------------------------------------------

    async def add(self, params: Mapping[str, str | int], *, before_send: BeforeSend | None = None) -> AddResult:
        """Place one order upstream. Never raises for upstream trouble; never retries. `before_send` is awaited
        just before the request is written (see `BeforeSend`)."""
        try:
            reply = await self.transport.exchange("add", params, before_send)
        except CallFailed as failed:
            return Unknown(failed.reason) if failed.sent else NotSent(failed.reason)
        result = _submit_result(reply, "order")
        if isinstance(result, str):
            return Accepted(result)
        return result

    async def refill(self, provider_order_id: str) -> RefillResult:
        try:
            reply = await self.transport.exchange("refill", {"order": provider_order_id})
        except CallFailed as failed:
            return Unknown(failed.reason) if failed.sent else NotSent(failed.reason)
        result = _submit_result(reply, "refill")
        if isinstance(result, str):
            return RefillAccepted(result)
        return result

    async def status(self, ids: Iterable[str]) -> dict[str, OrderReport | IdError]:
        """Status of upstream orders, `BATCH_MAX` ids per call; every id asked for is in the answer."""
        wanted = _unique(ids)
        replies = await asyncio.gather(
            *(self._query("status", {"orders": ",".join(chunk)}) for chunk in _chunks(wanted))
        )
        found: dict[str, Any] = {}
        for body in replies:
            if not isinstance(body, Mapping):
                raise UpstreamBadReply(f"status: expected an object, got {type(body).__name__}")
            found.update({str(k): v for k, v in body.items()})
        return {i: normalize.order_report(found[i]) if i in found else IdError("Missing from reply") for i in wanted}

    async def refill_status(self, ids: Iterable[str]) -> dict[str, RefillReport | IdError]:
        wanted = _unique(ids)
        replies = await asyncio.gather(
            *(self._query("refill_status", {"refills": ",".join(chunk)}) for chunk in _chunks(wanted))
        )
        found = _by_id(replies, id_field="refill", value_field="status")
        return {i: normalize.refill_report(found[i]) if i in found else IdError("Missing from reply") for i in wanted}

    async def cancel(self, ids: Iterable[str]) -> dict[str, Literal[True] | IdError]:
        """Ask the upstream to cancel; True where it took the request (the outcome shows in `status`)."""
        wanted = _unique(ids)
        replies = await asyncio.gather(
            *(self._query("cancel", {"orders": ",".join(chunk)}) for chunk in _chunks(wanted))
        )
        found = _by_id(replies, id_field="order", value_field="cancel")
        result: dict[str, Literal[True] | IdError] = {}
        for i in wanted:
            value = found.get(i)
            message = normalize.error_message(value)
            if message is not None:
                result[i] = IdError(message)
            elif i not in found:
                result[i] = IdError("Missing from reply")
            elif normalize.to_bool(value):
                result[i] = True
            else:
                result[i] = IdError(f"not accepted: {value!r}"[:200])
        return result

    async def balance(self) -> Balance:
        body = await self._query("balance", {})
        amount = normalize.to_decimal(body.get("balance")) if isinstance(body, Mapping) else None
        if amount is None:
            raise UpstreamBadReply(f"balance: unreadable answer {body!r}"[:200])
        currency = body.get("currency")
        return Balance(amount=amount, currency=currency if isinstance(currency, str) else "")

    async def services(self) -> ServicesReply:
        body = await self._query("services", {})
        if not isinstance(body, list):
            raise UpstreamBadReply(f"services: expected a list, got {type(body).__name__}")
        services, skipped = [], []
        for raw in body:
            service = normalize.upstream_service(raw)
            if service is None:
                skipped.append(repr(raw)[:200])
            else:
                services.append(service)
        return ServicesReply(services, skipped)

    # --- answers of the calls that raise ---------------------------------------------------------------------

    async def _query(self, action: str, params: Mapping[str, str | int]) -> Any:
        """A call whose failure raises: UpstreamUnreachable, UpstreamBadReply or UpstreamRejected."""
        try:
            reply = await self.transport.exchange(action, params)
        except CallFailed as failed:
            raise (UpstreamBadReply if failed.sent else UpstreamUnreachable)(f"{action}: {failed.reason}") from None
        message = normalize.error_message(reply.body)
        if message is not None:
            raise UpstreamRejected(message)
        if reply.status >= 300:
            raise UpstreamBadReply(f"{action}: http {reply.status}")
        return reply.body


def _submit_result(reply: Reply, id_field: str) -> str | Refused | NotSent | Unknown | Any:
    """The upstream id as text, or the classified failure of an `add`/`refill` answer."""
    message = normalize.error_message(reply.body)
    if reply.status in _TURNED_AWAY:
        return NotSent(f"http {reply.status}: {message or 'turned away'}")
    if message is not None and reply.status != 408:
        return normalize.classify_error(message)
    if reply.status < 300 and isinstance(reply.body, Mapping):
        value = reply.body.get(id_field)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value.strip():
            # An id we could not store (NUL, control characters, megabytes) cannot be followed: the order is
            # parked like any unreadable answer, for an operator to look up.
            text = value.strip()
            if len(text) <= PROVIDER_ID_MAX and normalize.to_text(text, limit=PROVIDER_ID_MAX) == text:
                return text
    return Unknown(f"unexpected reply (http {reply.status}): {reply.body!r}"[:300])


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(str(i).strip() for i in ids))


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + BATCH_MAX] for i in range(0, len(ids), BATCH_MAX)]


def _by_id(replies: Iterable[Any], *, id_field: str, value_field: str) -> dict[str, Any]:
    """`[{"order": 1, "cancel": 1}, ...]` -> {"1": 1, ...}; also accepts the object shape `{"1": ...}`."""
    found: dict[str, Any] = {}
    for body in replies:
        if isinstance(body, Mapping):
            found.update({str(k): v for k, v in body.items()})
            continue
        if not isinstance(body, list):
            raise UpstreamBadReply(f"expected a list, got {type(body).__name__}")
        for entry in body:
            if isinstance(entry, Mapping) and id_field in entry:
                found[str(entry[id_field]).strip()] = entry.get(value_field)
    return found


class ProviderClients:
    """One `UpstreamClient` per provider id, rebuilt when the provider's URL or key changes."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[int, tuple[str, str, UpstreamClient]] = {}

    async def get(self, provider_id: int, *, url: str, key: str, name: str = "") -> UpstreamClient:
        known = self._clients.get(provider_id)
        if known is not None and known[0] == url and known[1] == key:
            return known[2]
        if known is not None:
            await known[2].close()
        client = UpstreamClient(url=url, key=key, settings=self._settings, name=name or f"provider-{provider_id}")
        self._clients[provider_id] = (url, key, client)
        return client

    async def close(self) -> None:
        for _, _, client in self._clients.values():
            await client.close()
        self._clients.clear()
