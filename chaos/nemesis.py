"""The faults: a seeded schedule (every class a given number of times, in random order, spread over the run)
and the injections themselves, one after the other.

| class | what happens |
|---|---|
| kill_api / kill_worker / kill_webhooks | `kill -9` of one replica, chosen at random; the supervisor restarts it |
| postgres_restart | Postgres stopped (`fast` or `immediate`, i.e. a crash), down a few seconds, started |
| rabbitmq_restart | RabbitMQ stopped (SIGTERM or SIGKILL), down a few seconds, started |
| redis_down | Redis killed, down a few seconds, started empty |
| upstream_timeout / upstream_5xx / upstream_garbage | the simulator answers that way to part of all calls for a while |
| receiver_down | the webhook receiver refuses connections for a while |
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

from chaos.receiver import Receiver
from chaos.stack import Stack

KILLS = ("kill_api", "kill_worker", "kill_webhooks")
OUTAGES = ("postgres_restart", "rabbitmq_restart", "redis_down", "receiver_down")
UPSTREAM = ("upstream_timeout", "upstream_5xx", "upstream_garbage")
CLASSES = KILLS + OUTAGES + UPSTREAM
MIN_DOWN_S = 2.0
MAX_DOWN_S = 10.0

# The simulator's fault plans (services/provider_sim/faults.py); each holds while the fault lasts.
SIM_PLANS: dict[str, dict[str, Any]] = {
    # An `add` that times out was created upstream first: the caller cannot know.
    "upstream_timeout": {"rules": [{"fault": "timeout", "rate": 0.5, "seconds": 30}]},
    # A 502 before anything was done, or after the order was created (the reply was lost).
    "upstream_5xx": {
        "rules": [
            {"fault": "ghost", "action": "add", "mode": "502", "rate": 0.25},
            {"fault": "http_error", "status": 502, "rate": 0.5},
        ]
    },
    "upstream_garbage": {"rules": [{"fault": "garbage", "rate": 0.5}]},
}


@dataclass(frozen=True)
class Planned:
    fault: str
    at_s: float  # seconds after the start of the load
    down_s: float  # how long an outage lasts (0 for a kill)


def schedule(seconds: float, seed: int, rounds: int | None = None) -> list[Planned]:
    """Each class `rounds` times (default: one round per 200 s of run, at least one), shuffled per round,
    at jittered even spacing over `seconds`."""
    rng = random.Random(seed)
    rounds = rounds if rounds is not None else max(1, int(seconds // 200))
    order: list[str] = []
    for _ in range(rounds):
        batch = list(CLASSES)
        rng.shuffle(batch)
        order.extend(batch)
    slot = seconds / len(order)
    plan = []
    for i, fault in enumerate(order):
        at = i * slot + rng.uniform(0, slot * 0.3)
        down = 0.0 if fault in KILLS else rng.uniform(MIN_DOWN_S, max(MIN_DOWN_S, min(MAX_DOWN_S, slot * 0.5)))
        plan.append(Planned(fault, round(at, 2), round(down, 2)))
    return plan


@dataclass
class Injected:
    fault: str
    at_s: float
    took_s: float
    detail: str


class Nemesis:
    def __init__(self, stack: Stack, receiver: Receiver, seed: int, upstream_latency_ms: float = 0) -> None:
        self.stack = stack
        self.receiver = receiver
        self.rng = random.Random(seed + 1)
        self.log: list[Injected] = []
        # Every upstream call takes this long when no fault fires: kills then catch calls in flight.
        self.baseline = [{"fault": "latency", "ms": upstream_latency_ms}] if upstream_latency_ms > 0 else []

    async def calm_upstream(self) -> None:
        assert self.stack.sim_control is not None
        await self.stack.sim_control.faults({"rules": self.baseline})

    async def run(self, plan: list[Planned]) -> None:
        began = time.monotonic()
        for planned in plan:
            wait = planned.at_s - (time.monotonic() - began)
            if wait > 0:
                await asyncio.sleep(wait)
            start = time.monotonic()
            detail = await self.inject(planned)
            self.log.append(
                Injected(planned.fault, round(start - began, 1), round(time.monotonic() - start, 1), detail)
            )

    async def inject(self, planned: Planned) -> str:
        fault, down = planned.fault, planned.down_s
        if fault in KILLS:
            kind = fault.removeprefix("kill_")
            member = self.rng.choice([m for m in self.stack.members if m.kind == kind and m.process.alive()])
            self.stack.kill(member)
            return f"kill -9 {member.name}"
        if fault == "postgres_restart":
            mode = self.rng.choice(("fast", "immediate"))
            await self.stack.postgres.stop(mode=mode)
            await asyncio.sleep(down)
            await self.stack.postgres.start()
            return f"stopped ({mode}) {down}s"
        if fault == "rabbitmq_restart":
            crash = self.rng.random() < 0.5
            await (self.stack.rabbit.kill() if crash else self.stack.rabbit.stop())
            await asyncio.sleep(down)
            await self.stack.rabbit.start()
            return f"{'killed' if crash else 'stopped'} {down}s"
        if fault == "redis_down":
            await self.stack.redis.kill()
            await asyncio.sleep(down)
            await self.stack.redis.start()
            return f"killed {down}s"
        if fault == "receiver_down":
            await self.receiver.down()
            await asyncio.sleep(down)
            await self.receiver.up()
            return f"down {down}s"
        assert self.stack.sim_control is not None
        await self.stack.sim_control.faults({"rules": SIM_PLANS[fault]["rules"] + self.baseline})
        await asyncio.sleep(down)
        await self.calm_upstream()
        return f"{down}s"
