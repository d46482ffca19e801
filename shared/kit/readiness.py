"""Readiness checks: async callables that raise when the dependency they watch is not usable.

A process builds its checks from what it owns and hands them to its ops server (shared/kit/ops_server.py):

    checks = {"database": database_check(pool), "schema": schema_check(pool),     # shared/db/readiness.py
              "broker": consumer_check(consumer), "loops": loops_check()}           # shared/messaging/readiness.py

`NotReady` is the error a check raises with a message written for operators; any other exception counts as
failed too, with its type and text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from shared.kit.supervisor import SUPERVISOR, Supervisor

Check = Callable[[], Awaitable[None]]

CHECK_TIMEOUT_S = 2.0


class NotReady(Exception):
    pass


def loops_check(supervisor: Supervisor = SUPERVISOR) -> Check:
    """Ready while every supervised loop of the process completes rounds (see shared/kit/supervisor.py)."""

    async def check() -> None:
        stalled = supervisor.stalled()
        if stalled:
            listed = ", ".join(f"{name} (no round for {idle:.0f} s)" for name, idle in sorted(stalled.items()))
            raise NotReady(f"loops not making progress: {listed}")

    return check


async def run_checks(checks: Mapping[str, Check]) -> dict[str, str]:
    """The failing checks, by name, with their error (empty: ready)."""

    async def one(check: Check) -> str | None:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_S + 1)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return None

    results = await asyncio.gather(*(one(check) for check in checks.values()))
    return {name: error for name, error in zip(checks, results, strict=True) if error is not None}
