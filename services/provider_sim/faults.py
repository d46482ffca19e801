"""Faults the simulator injects: switched on by rate through `POST /_sim/faults`, or per call by a link marker.

`POST /_sim/faults` body (replaces the current plan):
    {"rules": [{"fault": "timeout", "action": "add", "rate": 1.0, "times": 2, "seconds": 30}],
     "drift": ["cancelled", "lowercase", "in_progress_caps", "remains_unknown", "numbers_as_ints"]}
A rule fires for calls of `action` (every action when absent) with probability `rate` (default 1), for the
next `times` matching calls (unlimited when absent). The first rule that fires wins.

Faults (`fault` of a rule; the link marker in brackets, for `add`):
- latency (`latency:MS`): answer normally after `ms` milliseconds.
- timeout (`timeout[:S]`): sleep `seconds` (default 30: past any client timeout) before answering; an `add`
  creates its order first unless `"create": false`.
- http_error (`5xx[:STATUS]`): HTTP `status` (default 500) with an HTML body; nothing created.
- garbage (`garbage`): HTTP 200 with a non-JSON body; nothing created.
- out_of_funds (`funds`): `{"error": "Not enough funds on balance"}`.
- incorrect_link (`badlink`): `{"error": "Incorrect link"}`.
- ghost (`ghost`, `ghost502`): the order IS created, then the reply is lost: the connection is dropped
  (`"mode": "drop"`, default) or a 502 is returned (`"mode": "502"`).
- drop (`drop`): the connection is dropped before anything is done.
Drift (status and refill_status answers): `Cancelled`, lower-case statuses, `In Progress`,
`"remains": "Unknown"`, numbers as JSON numbers instead of strings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

FAULTS = frozenset({"latency", "timeout", "http_error", "garbage", "out_of_funds", "incorrect_link", "ghost", "drop"})
DRIFTS = frozenset({"cancelled", "lowercase", "in_progress_caps", "remains_unknown", "numbers_as_ints"})
_MARKERS = {
    "latency": "latency", "timeout": "timeout", "5xx": "http_error", "garbage": "garbage", "funds": "out_of_funds",
    "badlink": "incorrect_link", "ghost": "ghost", "ghost502": "ghost", "drop": "drop",
}  # fmt: skip


@dataclass
class FaultRule:
    fault: str
    action: str | None = None
    rate: float = 1.0
    times: int | None = None
    ms: float = 0.0
    seconds: float = 30.0
    status: int = 500
    mode: str = "drop"
    create: bool = True

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FaultRule:
        fault = str(raw.get("fault", ""))
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: one of {sorted(FAULTS)}")
        times = raw.get("times")
        return cls(
            fault=fault,
            action=raw.get("action"),
            rate=float(raw.get("rate", 1.0)),
            times=None if times is None else int(times),
            ms=float(raw.get("ms", 0)),
            seconds=float(raw.get("seconds", 30)),
            status=int(raw.get("status", 500)),
            mode=str(raw.get("mode", "drop")),
            create=bool(raw.get("create", True)),
        )


def marker_rule(markers: dict[str, str]) -> FaultRule | None:
    """The fault a link's `sim=` markers ask for, if any."""
    for marker, fault in _MARKERS.items():
        if marker not in markers:
            continue
        arg = markers[marker]
        rule = FaultRule(fault=fault)
        if fault == "latency":
            rule.ms = float(arg or 100)
        elif fault == "timeout" and arg:
            rule.seconds = float(arg)
        elif fault == "http_error" and arg:
            rule.status = int(arg)
        elif marker == "ghost502":
            rule.mode = "502"
        return rule
    return None


class FaultPlan:
    def __init__(self, rules: list[FaultRule] | None = None, drift: set[str] | None = None) -> None:
        self.rules = rules or []
        self.drift = drift or set()

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FaultPlan:
        drift = {str(d) for d in raw.get("drift", [])}
        unknown = drift - DRIFTS
        if unknown:
            raise ValueError(f"unknown drift {sorted(unknown)}: any of {sorted(DRIFTS)}")
        return cls([FaultRule.from_json(r) for r in raw.get("rules", [])], drift)

    def pick(self, action: str, rng: random.Random) -> FaultRule | None:
        for rule in self.rules:
            if rule.action not in (None, action) or rule.times == 0:
                continue
            if rule.rate < 1.0 and rng.random() >= rule.rate:
                continue
            if rule.times is not None:
                rule.times -= 1
            return rule
        return None

    def order_entry(self, body: dict[str, Any]) -> dict[str, Any]:
        """One status entry as a drifting panel would write it."""
        if not self.drift:
            return body
        body = dict(body)
        status = body["status"]
        if "cancelled" in self.drift and status == "Canceled":
            status = "Cancelled"
        if "in_progress_caps" in self.drift and status == "In progress":
            status = "In Progress"
        if "lowercase" in self.drift:
            status = status.lower()
        body["status"] = status
        if "numbers_as_ints" in self.drift:
            body["start_count"] = int(body["start_count"])
            body["remains"] = int(body["remains"])
            body["charge"] = float(body["charge"])
        if "remains_unknown" in self.drift:
            body["remains"] = "Unknown"
        return body

    def refill_entry(self, status: str) -> str:
        if "cancelled" in self.drift and status == "Canceled":
            status = "Cancelled"
        if "in_progress_caps" in self.drift and status == "In progress":
            status = "In Progress"
        return status.lower() if "lowercase" in self.drift else status
