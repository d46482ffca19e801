"""`Client` (blocking) and `AsyncClient` (asyncio) for panelflow's API v2. Same methods, same behaviour:

- `add` sends a `request_id` (made per order unless you pass one) and the same one on every retry, so a retried
  order is placed and charged once;
- connection errors, 429 and 503 are retried (`RetryPolicy`), honouring `Retry-After`;
- errors raise typed `PanelflowError`s carrying the API's message;
- the batch helpers (`statuses`, `refills`, `refill_statuses`, `cancel`) take any number of ids and split them
  into calls of at most 100.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import httpx

from panelflow_client import _core
from panelflow_client._core import Balance, OrderStatus, RetryPolicy, Service
from panelflow_client.errors import PanelflowError, TransportError

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class _Base:
    def __init__(self, url: str, key: str, retry: RetryPolicy | None) -> None:
        self.url = url
        self.retry = retry or RetryPolicy()
        self._headers = {"X-API-Key": key, "User-Agent": _core.USER_AGENT, "Accept": "application/json"}


class Client(_Base):
    """`Client("https://panel.example/api/v2", "pf_...")`; use as a context manager or call `close()`."""

    def __init__(
        self, url: str, key: str, *, retry: RetryPolicy | None = None, http: httpx.Client | None = None
    ) -> None:
        super().__init__(url, key, retry)
        self._http = http or httpx.Client(timeout=DEFAULT_TIMEOUT)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def call(self, action: str, **params: object) -> Any:
        """Any action, with retries; the decoded JSON answer."""
        form = {"action": action, **{k: str(v) for k, v in params.items() if v is not None}}
        return self._send(form)

    def _send(self, form: dict[str, str]) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                try:
                    resp = self._http.post(self.url, data=form, headers=self._headers)
                except httpx.TransportError as exc:
                    raise TransportError(f"{type(exc).__name__}: {exc}") from exc
                return _core.interpret(resp.status_code, resp.headers, resp.content)
            except PanelflowError as exc:
                wait = self.retry.delay(attempt, exc)
                if wait is None:
                    raise
                time.sleep(wait)

    def services(self) -> list[Service]:
        return [_core.to_service(s) for s in self.call("services")]

    def balance(self) -> Balance:
        return _core.to_balance(self.call("balance"))

    def add(self, service: int, *, request_id: str | None = None, **params: object) -> int:
        """Place an order; its id. `params` are the type's parameters (`link`, `quantity`, `runs`, `comments`
        as a list or a string, ...). Pass `request_id` to tie the order to your own record."""
        form = _core.add_form(service, request_id or _core.new_request_id(), params)
        return int(self._send(form)["order"])

    def status(self, order: int) -> OrderStatus:
        return _core.to_status(self.call("status", order=order))

    def statuses(self, orders: Iterable[int]) -> dict[int, OrderStatus | PanelflowError]:
        found: dict[int, OrderStatus | PanelflowError] = {}
        for batch in _core.chunks(orders):
            _core.merge_statuses(self.call("status", orders=",".join(batch)), found)
        return found

    def refill(self, order: int) -> int:
        return int(self.call("refill", order=order)["refill"])

    def refills(self, orders: Iterable[int]) -> dict[int, int | PanelflowError]:
        found: dict[int, int | PanelflowError] = {}
        for batch in _core.chunks(orders):
            _core.merge_list(self.call("refill", orders=",".join(batch)), "order", "refill", int, found)
        return found

    def refill_status(self, refill: int) -> str:
        return str(self.call("refill_status", refill=refill)["status"])

    def refill_statuses(self, refills: Iterable[int]) -> dict[int, str | PanelflowError]:
        found: dict[int, str | PanelflowError] = {}
        for batch in _core.chunks(refills):
            _core.merge_list(self.call("refill_status", refills=",".join(batch)), "refill", "status", str, found)
        return found

    def cancel(self, orders: Iterable[int]) -> dict[int, int | PanelflowError]:
        """Per order: 1 (cancellation accepted) or the error of that order."""
        found: dict[int, int | PanelflowError] = {}
        for batch in _core.chunks(orders):
            _core.merge_list(self.call("cancel", orders=",".join(batch)), "order", "cancel", int, found)
        return found


class AsyncClient(_Base):
    """`async with AsyncClient(url, key) as api: await api.add(...)`; the same methods as `Client`."""

    def __init__(
        self, url: str, key: str, *, retry: RetryPolicy | None = None, http: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(url, key, retry)
        self._http = http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, action: str, **params: object) -> Any:
        form = {"action": action, **{k: str(v) for k, v in params.items() if v is not None}}
        return await self._send(form)

    async def _send(self, form: dict[str, str]) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                try:
                    resp = await self._http.post(self.url, data=form, headers=self._headers)
                except httpx.TransportError as exc:
                    raise TransportError(f"{type(exc).__name__}: {exc}") from exc
                return _core.interpret(resp.status_code, resp.headers, resp.content)
            except PanelflowError as exc:
                wait = self.retry.delay(attempt, exc)
                if wait is None:
                    raise
                await asyncio.sleep(wait)

    async def services(self) -> list[Service]:
        return [_core.to_service(s) for s in await self.call("services")]

    async def balance(self) -> Balance:
        return _core.to_balance(await self.call("balance"))

    async def add(self, service: int, *, request_id: str | None = None, **params: object) -> int:
        form = _core.add_form(service, request_id or _core.new_request_id(), params)
        return int((await self._send(form))["order"])

    async def status(self, order: int) -> OrderStatus:
        return _core.to_status(await self.call("status", order=order))

    async def statuses(self, orders: Iterable[int]) -> dict[int, OrderStatus | PanelflowError]:
        found: dict[int, OrderStatus | PanelflowError] = {}
        for batch in _core.chunks(orders):
            _core.merge_statuses(await self.call("status", orders=",".join(batch)), found)
        return found

    async def refill(self, order: int) -> int:
        return int((await self.call("refill", order=order))["refill"])

    async def refills(self, orders: Iterable[int]) -> dict[int, int | PanelflowError]:
        found: dict[int, int | PanelflowError] = {}
        for batch in _core.chunks(orders):
            _core.merge_list(await self.call("refill", orders=",".join(batch)), "order", "refill", int, found)
        return found

    async def refill_status(self, refill: int) -> str:
        return str((await self.call("refill_status", refill=refill))["status"])

    async def refill_statuses(self, refills: Iterable[int]) -> dict[int, str | PanelflowError]:
        found: dict[int, str | PanelflowError] = {}
        for batch in _core.chunks(refills):
            answer = await self.call("refill_status", refills=",".join(batch))
            _core.merge_list(answer, "refill", "status", str, found)
        return found

    async def cancel(self, orders: Iterable[int]) -> dict[int, int | PanelflowError]:
        found: dict[int, int | PanelflowError] = {}
        for batch in _core.chunks(orders):
            _core.merge_list(await self.call("cancel", orders=",".join(batch)), "order", "cancel", int, found)
        return found
