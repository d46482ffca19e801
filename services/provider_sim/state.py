"""The simulator's memory: catalog, orders, refills, their progress over time, and the counters tests read.

Progress is computed from the clock when asked, not by timers, so thousands of orders cost nothing while they
wait. The clock is `time.monotonic()` plus an offset that tests can advance (`POST /_sim/clock`).

Outcome of an order, in this order of precedence: a `sim=` marker in its link's query string
(`https://x.test/p?sim=partial:157`), else a weighted draw from the outcome mix (seeded).
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from shared.domain.money import format_money, quantize

OUTCOMES = ("completed", "partial", "canceled", "stuck")  # stuck: In progress forever (cancel tests)


@dataclass
class SimService:
    service: int
    name: str
    type: str
    category: str
    rate: Decimal
    min: int
    max: int
    refill: bool = False
    cancel: bool = False
    dripfeed: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "service": self.service, "name": self.name, "type": self.type, "category": self.category,
            "rate": format_money(self.rate), "min": str(self.min), "max": str(self.max),
            "refill": self.refill, "cancel": self.cancel, "dripfeed": self.dripfeed,
        }  # fmt: skip

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SimService:
        return cls(
            service=int(raw["service"]), name=str(raw.get("name", f"Service {raw['service']}")),
            type=str(raw.get("type", "Default")), category=str(raw.get("category", "")),
            rate=Decimal(str(raw["rate"])), min=int(raw.get("min", 1)), max=int(raw.get("max", 1)),
            refill=bool(raw.get("refill", False)), cancel=bool(raw.get("cancel", False)),
            dripfeed=bool(raw.get("dripfeed", False)),
        )  # fmt: skip


def default_catalog() -> list[SimService]:
    d = Decimal
    return [
        SimService(1, "Instagram Followers [Refill]", "Default", "Instagram", d("0.90"), 50, 10_000, True, True, True),
        SimService(2, "Instagram Likes [No refill]", "Default", "Instagram", d("0.35"), 10, 50_000, False, True, True),
        SimService(3, "Instagram Verified Package", "Package", "Instagram", d("12.50"), 1, 1),
        SimService(4, "Instagram Custom Comments", "Custom Comments", "Instagram", d("4.20"), 5, 1_000, False, True),
        SimService(5, "Google Keyword Traffic", "SEO", "Website", d("1.10"), 100, 100_000),
        SimService(6, "Instagram Mentions Custom List", "Mentions Custom List", "Instagram", d("2.00"), 10, 5_000),
        SimService(7, "Instagram Auto Likes", "Subscriptions", "Instagram", d("0.40"), 50, 10_000),
        SimService(8, "YouTube Views [Refill]", "Default", "YouTube", d("0.01215"), 100, 1_000_000, True, False),
    ]  # fmt: skip


@dataclass
class Timing:
    pending_s: float
    completion_s: float
    instant: bool

    def phase(self, elapsed: float) -> tuple[str, float]:
        """("pending" | "running" | "done", share delivered so far in [0, 1])."""
        if self.instant or elapsed >= self.completion_s:
            return "done", 1.0
        if elapsed < self.pending_s:
            return "pending", 0.0
        span = max(self.completion_s - self.pending_s, 1e-9)
        return "running", (elapsed - self.pending_s) / span


@dataclass
class SimOrder:
    id: int
    service: SimService
    link: str
    quantity: int
    charge: Decimal
    created: float
    outcome: str
    partial_remains: int
    start_count: int
    refill_rejected: bool = False
    canceled_at: float | None = None


@dataclass
class SimRefill:
    id: int
    order_id: int
    created: float
    rejected: bool


@dataclass
class Stats:
    calls: Counter[str] = field(default_factory=Counter)
    adds: int = 0
    adds_per_link: Counter[str] = field(default_factory=Counter)
    adds_per_request_id: Counter[str] = field(default_factory=Counter)
    orders_created: int = 0
    orders_per_link: Counter[str] = field(default_factory=Counter)
    status_calls: int = 0
    status_ids_total: int = 0
    status_ids_per_call: deque[int] = field(default_factory=lambda: deque(maxlen=1000))
    faults_fired: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "adds": self.adds,
            "adds_per_link": dict(self.adds_per_link),
            "adds_per_request_id": dict(self.adds_per_request_id),
            "orders_created": self.orders_created,
            "orders_per_link": dict(self.orders_per_link),
            "status_calls": self.status_calls,
            "status_ids_total": self.status_ids_total,
            "status_ids_per_call": list(self.status_ids_per_call),
            "faults_fired": dict(self.faults_fired),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }


def link_markers(link: str) -> dict[str, str]:
    """`...?sim=partial:157,latency:200` -> {"partial": "157", "latency": "200"} (case-insensitive names)."""
    _, _, query = link.partition("?")
    markers: dict[str, str] = {}
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name != "sim":
            continue
        for token in value.replace("%2C", ",").replace("%3A", ":").split(","):
            key, _, arg = token.partition(":")
            if key:
                markers[key.strip().lower()] = arg.strip()
    return markers


class SimState:
    def __init__(
        self,
        *,
        timing: Timing,
        outcome_mix: dict[str, float],
        seed: int,
        balance: Decimal,
        currency: str = "USD",
        idempotent: bool = True,
    ) -> None:
        self.timing = timing
        self.outcome_mix = {k: v for k, v in outcome_mix.items() if k in OUTCOMES and v > 0} or {"completed": 1.0}
        self.rng = random.Random(seed)
        self.balance = balance
        self.currency = currency
        self.idempotent = idempotent  # honour request_id: a repeated id answers the order it created
        self.catalog: dict[int, SimService] = {s.service: s for s in default_catalog()}
        self.orders: dict[int, SimOrder] = {}
        self.by_request_id: dict[str, int] = {}
        self.refills: dict[int, SimRefill] = {}
        self.stats = Stats()
        self.clock_offset = 0.0
        self._next_order = 1000
        self._next_refill = 500

    def now(self) -> float:
        return time.monotonic() + self.clock_offset

    def set_catalog(self, services: list[SimService]) -> None:
        self.catalog = {s.service: s for s in services}

    # --- orders ----------------------------------------------------------------------------------------------

    def create_order(
        self, service: SimService, *, link: str, quantity: int, charge: Decimal, request_id: str | None
    ) -> SimOrder:
        """A new order, or (when honouring request ids) the one already created for this `request_id`: the
        charge is taken once."""
        if self.idempotent and request_id is not None and request_id in self.by_request_id:
            return self.orders[self.by_request_id[request_id]]
        markers = link_markers(link)
        outcome = next((name for name in OUTCOMES if name in markers), None)
        if outcome is None:
            names, weights = zip(*self.outcome_mix.items(), strict=True)
            outcome = self.rng.choices(names, weights=weights)[0]
        remains_arg = markers.get("partial", "")
        partial_remains = int(remains_arg) if remains_arg.isdigit() else max(1, quantity // 4)
        self._next_order += 1
        order = SimOrder(
            id=self._next_order,
            service=service,
            link=link,
            quantity=quantity,
            charge=charge,
            created=self.now(),
            outcome=outcome,
            partial_remains=min(max(partial_remains, 1), quantity),
            start_count=self.rng.randrange(0, 10_000),
            refill_rejected="refill_rejected" in markers,
        )
        self.orders[order.id] = order
        if request_id is not None:
            self.by_request_id[request_id] = order.id
        self.balance -= charge
        self.stats.orders_created += 1
        self.stats.orders_per_link[link] += 1
        return order

    def order_status(self, order: SimOrder) -> tuple[str, int]:
        """(contract status, remains) now."""
        q = order.quantity
        if order.canceled_at is not None:
            _, share = self.timing.phase(order.canceled_at - order.created)
            delivered = min(int(q * share), q)
            return ("Canceled", q) if delivered == 0 else ("Partial", q - delivered)
        phase, share = self.timing.phase(self.now() - order.created)
        if phase == "pending":
            return "Pending", q
        if phase == "running" or order.outcome == "stuck":
            return "In progress", max(q - int(q * min(share, 1.0)), 1)
        if order.outcome == "completed":
            return "Completed", 0
        if order.outcome == "partial":
            return "Partial", order.partial_remains
        return "Canceled", q

    def status_body(self, order: SimOrder) -> dict[str, Any]:
        status, remains = self.order_status(order)
        if status == "Canceled":
            charge = Decimal(0)
        elif status == "Partial":
            charge = quantize(order.charge * (order.quantity - remains) / order.quantity)
        else:
            charge = order.charge
        return {
            "charge": format_money(charge),
            "start_count": str(order.start_count),
            "status": status,
            "remains": str(remains),
            "currency": self.currency,
        }

    def cancel(self, order_id: int) -> str | None:
        """None when the cancel was taken, else the error message."""
        order = self.orders.get(order_id)
        if order is None:
            return "Incorrect order ID"
        if not order.service.cancel:
            return "Cancel is disabled for this service"
        if order.canceled_at is not None:
            return "Cancel already requested"
        if self.order_status(order)[0] in ("Completed", "Partial", "Canceled"):
            return "Order is already finished"
        order.canceled_at = self.now()
        return None

    # --- refills ---------------------------------------------------------------------------------------------

    def refill(self, order_id: int) -> SimRefill | str:
        order = self.orders.get(order_id)
        if order is None:
            return "Incorrect order ID"
        if not order.service.refill:
            return "Refill is disabled for this service"
        if self.order_status(order)[0] not in ("Completed", "Partial"):
            return "Order is not completed yet"
        self._next_refill += 1
        refill = SimRefill(self._next_refill, order.id, self.now(), order.refill_rejected)
        self.refills[refill.id] = refill
        return refill

    def refill_status(self, refill: SimRefill) -> str:
        phase, _ = self.timing.phase(self.now() - refill.created)
        if phase == "pending":
            return "Pending"
        if phase == "running":
            return "In progress"
        return "Rejected" if refill.rejected else "Completed"
