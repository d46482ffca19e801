"""`python -m services.relay`, started as an operator does: it publishes the outbox and serves its ops port."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from shared.settings import Settings
from tests.support.messaging import Observer, eventually, insert_events, unpublished
from tests.support.processes import ManagedProcess, free_port, settings_env


async def test_the_relay_process_publishes_the_outbox_and_serves_its_ops_port(
    msettings: Settings, messaging_pool: asyncpg.Pool, logs_dir: Path
) -> None:
    ops = f"http://127.0.0.1:{free_port()}"
    env = settings_env(msettings, metrics_port_relay=int(ops.rsplit(":", 1)[1]))
    async with Observer(msettings) as observer:
        relay = ManagedProcess("services.relay", env, logs_dir / "relay-process.log").start()
        try:
            await relay.wait_http(ops + "/readyz")
            await insert_events(messaging_pool, 5)
            await observer.wait_for(5)

            async def all_published() -> bool:
                return await unpublished(messaging_pool) == 0

            await eventually(all_published, timeout=15)
            async with aiohttp.ClientSession() as session:
                async with session.get(ops + "/healthz") as resp:
                    assert resp.status == 200
                async with session.get(ops + "/metrics") as resp:
                    text = await resp.text()
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            assert samples[("panelflow_outbox_published_total", ())] == 5
            assert any(name == "panelflow_build_info" and ("process", "relay") in labels for name, labels in samples)
            assert relay.proc is not None
            relay.proc.send_signal(signal.SIGTERM)
            assert relay.proc.wait(timeout=20) == 0, relay.log_text()[-2000:]
        finally:
            relay.stop()
    assert '"relay_stopping"' in relay.log_text()
