"""What every long-running process starts beside its work: the operations server and the metric samplers.

ops = ProcessOps(settings, "worker", settings.metrics_port_worker, checks={...}, samplers=[...])
await ops.start()    # before the work: /healthz answers while the process starts up
...
await ops.stop()     # after the work drained
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from shared.observability import metrics
from shared.observability.http import Check, OpsServer
from shared.settings import Settings


class Background(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ProcessOps:
    def __init__(
        self,
        settings: Settings,
        process: str,
        port: int,
        *,
        checks: Mapping[str, Check],
        samplers: Sequence[Background] = (),
    ) -> None:
        self.settings = settings
        self.process = process
        self.server = OpsServer(settings.metrics_host, port, checks)
        self.samplers = list(samplers)

    async def start(self) -> None:
        metrics.set_build_info(self.process, self.settings.release)
        await self.server.start()
        for sampler in self.samplers:
            await sampler.start()

    async def stop(self) -> None:
        for sampler in self.samplers:
            await sampler.stop()
        await self.server.stop()
