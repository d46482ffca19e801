"""The steady load: resellers placing orders with request ids (retrying any failure with the same request id,
as resellers do, on another api replica), re-sending some on purpose, polling status, cancelling and refilling.

Everything a client was told is recorded (`History`): the audit compares it with the database afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp

from chaos.stack import Account

RETRYABLE = frozenset({429, 500, 502, 503, 504})
ADD_DEADLINE_S = 120.0  # a client gives up on one order after this long (the order may still exist)
CALL_TIMEOUT_S = 10.0


@dataclass
class Attempt:
    """One order a client tried to place (every send used the same request id and parameters)."""

    account_id: int
    request_id: str
    link: str
    quantity: int
    sends: int = 0
    order_ids: set[int] = field(default_factory=set)  # every {"order": N} answered for it
    rejected: str | None = None  # a definite 4xx answer


@dataclass
class History:
    attempts: dict[tuple[int, str], Attempt] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)  # HTTP answers by action and status
    transport_errors: Counter[str] = field(default_factory=Counter)
    server_errors: list[dict[str, Any]] = field(default_factory=list)  # 500s: a dependency outage must be 503
    gave_up: int = 0
    resent_on_purpose: int = 0
    cancels: Counter[str] = field(default_factory=Counter)
    refills: Counter[str] = field(default_factory=Counter)
    status_polls: int = 0
    # An acknowledged order that `status` called unknown (a read must never lose an order).
    status_not_found: list[dict[str, Any]] = field(default_factory=list)
    shed: int = 0  # placements skipped because too many were in flight
    # What `status` said of each order, in the order the polls were answered: (status, charge).
    observed: dict[int, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))

    def acknowledged(self) -> dict[int, Attempt]:
        return {order_id: a for a in self.attempts.values() for order_id in a.order_ids}


class Load:
    def __init__(self, api_urls: list[str], accounts: list[Account], service_id: int, seed: int, rate: float) -> None:
        self.api_urls = api_urls
        self.accounts = accounts
        self.service_id = service_id
        self.rng = random.Random(seed)
        self.rate = rate
        self.history = History()
        self.run = uuid.uuid4().hex[:8]
        self.stopping = asyncio.Event()
        self.in_flight: set[asyncio.Task[None]] = set()
        self.max_in_flight = 200
        self._n = 0
        self._session: aiohttp.ClientSession | None = None

    async def call(self, account: Account, action: str, **params: str) -> tuple[int, Any]:
        """One call to a random api replica: (status, body), or (0, None) on a transport failure."""
        assert self._session is not None
        url = self.rng.choice(self.api_urls)
        form = {"key": account.key, "action": action, **params}
        try:
            async with self._session.post(url, data=form, timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)) as resp:
                body = await resp.json(content_type=None)
                self.history.statuses[f"{action} {resp.status}"] += 1
                if resp.status == 500:
                    self.history.server_errors.append({"action": action, "body": body, "url": url})
                return resp.status, body
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.history.transport_errors[type(exc).__name__] += 1
            return 0, None

    async def _add(self, attempt: Attempt) -> None:
        account = next(a for a in self.accounts if a.id == attempt.account_id)
        params = {
            "service": str(self.service_id),
            "link": attempt.link,
            "quantity": str(attempt.quantity),
            "request_id": attempt.request_id,
        }
        deadline = time.monotonic() + ADD_DEADLINE_S
        delay = 0.2
        while True:
            attempt.sends += 1
            status, body = await self.call(account, "add", **params)
            if status == 200 and isinstance(body, dict) and "order" in body:
                attempt.order_ids.add(int(body["order"]))
                return
            if status and status not in RETRYABLE:
                attempt.rejected = f"{status} {body}"
                return
            if time.monotonic() > deadline:
                self.history.gave_up += 1
                return
            await asyncio.sleep(delay * (0.5 + self.rng.random()))
            delay = min(2.0, delay * 2)

    async def _order_life(self) -> None:
        """Place one order; then maybe re-send it, cancel it, or ask for a refill, as a reseller might."""
        account = self.rng.choice(self.accounts)
        self._n += 1
        attempt = Attempt(
            account.id,
            f"{self.run}-{self._n}",
            f"https://chaos.test/{self.run}/{self._n}",
            self.rng.randrange(100, 1001, 50),
        )
        self.history.attempts[(account.id, attempt.request_id)] = attempt
        await self._add(attempt)
        if not attempt.order_ids:
            return
        order_id = min(attempt.order_ids)
        roll = self.rng.random()
        if roll < 0.10:  # the same request again, as a reseller whose answer got lost would: same order
            await asyncio.sleep(self.rng.uniform(0, 2))
            self.history.resent_on_purpose += 1
            await self._add(attempt)
        elif roll < 0.18:
            await asyncio.sleep(self.rng.uniform(0.2, 4))
            status, body = await self._retrying(account, "cancel", orders=str(order_id))
            self.history.cancels[_answer(status, body, "cancel")] += 1
        elif roll < 0.22:
            await asyncio.sleep(self.rng.uniform(5, 15))
            status, body = await self._retrying(account, "refill", order=str(order_id))
            self.history.refills[_answer(status, body, "refill")] += 1

    async def _retrying(self, account: Account, action: str, **params: str) -> tuple[int, Any]:
        for _ in range(20):
            status, body = await self.call(account, action, **params)
            if status and status not in RETRYABLE:
                return status, body
            await asyncio.sleep(0.5)
        return status, body

    async def _poll_status(self) -> None:
        """Each second, one account asks for the status of up to 100 of its acknowledged orders."""
        while not self.stopping.is_set():
            await asyncio.sleep(1.0)
            account = self.rng.choice(self.accounts)
            mine = [i for a in self.history.attempts.values() if a.account_id == account.id for i in a.order_ids]
            if not mine:
                continue
            wanted = self.rng.sample(mine, min(100, len(mine)))
            status, body = await self.call(account, "status", orders=",".join(map(str, wanted)))
            self.history.status_polls += 1
            if status != 200 or not isinstance(body, dict):
                continue
            for order_id in wanted:
                entry = body.get(str(order_id))
                if isinstance(entry, dict) and "error" in entry:
                    self.history.status_not_found.append({"order": order_id, "answer": entry})
                elif isinstance(entry, dict):
                    self.history.observed[order_id].append((str(entry.get("status")), str(entry.get("charge"))))

    async def run_until_stopped(self) -> None:
        """Start an order every 1/rate seconds until `stop()`; then let the ones in flight finish."""
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
            self._session = session
            poller = asyncio.create_task(self._poll_status())
            interval = 1.0 / self.rate
            next_at = time.monotonic()
            while not self.stopping.is_set():
                if len(self.in_flight) >= self.max_in_flight:
                    self.history.shed += 1
                else:
                    task = asyncio.create_task(self._order_life())
                    self.in_flight.add(task)
                    task.add_done_callback(self.in_flight.discard)
                next_at += interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), max(0.0, next_at - time.monotonic()))
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            if self.in_flight:
                await asyncio.wait(self.in_flight, timeout=ADD_DEADLINE_S + 30)
            for task in self.in_flight:
                task.cancel()
        self._session = None

    def stop(self) -> None:
        self.stopping.set()

    async def final_reads(self, orders: dict[int, list[int]]) -> FinalReads:
        """Once quiet: each account's `balance`, and the `status` of every order of it, as its client sees them."""
        reads = FinalReads()
        async with aiohttp.ClientSession() as session:
            self._session = session
            for account in self.accounts:
                ids = orders.get(account.id, [])
                for start in range(0, len(ids), 100):
                    chunk = ids[start : start + 100]
                    status, body = await self._retrying(account, "status", orders=",".join(map(str, chunk)))
                    if status == 200 and isinstance(body, dict):
                        reads.statuses.update({int(k): v for k, v in body.items()})
                status, body = await self._retrying(account, "balance")
                if status == 200 and isinstance(body, dict) and "balance" in body:
                    reads.balances[account.id] = Decimal(str(body["balance"]))
        self._session = None
        return reads


@dataclass
class FinalReads:
    statuses: dict[int, Any] = field(default_factory=dict)  # order id -> its `status` entry
    balances: dict[int, Decimal] = field(default_factory=dict)  # account id -> `balance`


def _answer(status: int, body: Any, field_name: str) -> str:
    """A short label of a cancel/refill answer for the counts."""
    if status != 200:
        return f"http {status}"
    entry = body[0] if isinstance(body, list) and body else body
    value = entry.get(field_name) if isinstance(entry, dict) else None
    if isinstance(value, dict) and "error" in value:
        return f"error: {value['error']}"
    if isinstance(entry, dict) and "error" in entry:
        return f"error: {entry['error']}"
    return "accepted"
