"""The provider simulator for tests: in-process (`running_sim`) or as its own process (`SimProcess`), and a
small driver of its control API (`SimControl`).

    async with running_sim(settings, completion_s=1) as sim:
        await sim.faults({"rules": [{"fault": "timeout", "action": "add", "times": 1}]})
        ... UpstreamClient(url=sim.api_url, key=sim.key, settings=settings) ...
        stats = await sim.stats()
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from services.provider_sim.app import create_app
from shared.settings import Settings
from tests.support.processes import ManagedProcess, free_port, settings_env


class SimControl:
    """Drives a running simulator over HTTP, as a test or a benchmark does."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v2"

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.base_url + path, json=body, timeout=aiohttp.ClientTimeout(total=10)) as resp,
        ):
            data = await resp.json(content_type=None)
            if resp.status != 200:
                raise AssertionError(f"{method} {path} -> {resp.status} {data}")
            return data

    async def call(self, action: str, **params: Any) -> tuple[int, Any]:
        """One API v2 call as a form POST: (HTTP status, parsed JSON body or the raw text)."""
        form = {"key": self.key, "action": action, **{k: str(v) for k, v in params.items()}}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.api_url, data=form, timeout=aiohttp.ClientTimeout(total=10)) as resp,
        ):
            text = await resp.text()
            try:
                return resp.status, await resp.json(content_type=None)
            except ValueError:
                return resp.status, text

    async def faults(self, plan: dict[str, Any]) -> None:
        await self._request("POST", "/_sim/faults", plan)

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/_sim/stats")
        return result

    async def reset(self, **overrides: Any) -> None:
        await self._request("POST", "/_sim/reset", overrides)

    async def set_catalog(self, services: list[dict[str, Any]]) -> None:
        await self._request("POST", "/_sim/catalog", services)

    async def advance(self, seconds: float) -> None:
        await self._request("POST", "/_sim/clock", {"advance": seconds})

    async def order(self, order_id: int | str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", f"/_sim/orders/{order_id}")
        return result


@asynccontextmanager
async def running_sim(settings: Settings, **overrides: Any) -> AsyncIterator[SimControl]:
    """A simulator inside the test's event loop on a free port; `overrides` are `sim_*` settings without
    the prefix (`completion_s=1`, `instant=True`, `outcome_mix={...}`)."""
    sim_settings = settings.model_copy(update={f"sim_{name}": value for name, value in overrides.items()})
    server = TestServer(create_app(sim_settings), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        yield SimControl(str(server.make_url("/")), sim_settings.sim_key)
    finally:
        await server.close()


class SimProcess(ManagedProcess):
    """`python -m services.provider_sim` on a free port (for worker tests and benchmarks)."""

    def __init__(self, settings: Settings, log_path: Path, **overrides: Any) -> None:
        self.port = int(overrides.setdefault("sim_port", free_port()))
        super().__init__("services.provider_sim", settings_env(settings, **overrides), log_path)
        self.control = SimControl(f"http://127.0.0.1:{self.port}", str(overrides.get("sim_key", settings.sim_key)))

    @property
    def api_url(self) -> str:
        return self.control.api_url

    async def started(self) -> SimProcess:
        self.start()
        await self.wait_http(self.control.base_url + "/healthz")
        return self
