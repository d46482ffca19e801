"""One order's correlation id through every process's log, and each process's /metrics, /healthz, /readyz.

The real processes (api, worker, webhooks, provider simulator) run as subprocesses with JSON logs; two orders
placed together (so the worker handles them in one batch) must each keep their own id on every line.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from shared.db.pool import create_pool
from shared.settings import Settings
from tests.support.factories import make_customer
from tests.support.isolation import delete_amqp_names, fresh_database
from tests.support.processes import ApiProcess, ManagedProcess, free_port, settings_env
from tests.support.webhooks import RECEIVER_NETWORK, Receiver, register, wait_until
from tests.support.worker import SimProcess, WorkerProcess, make_provider_services
from tests.webhooks.conftest import SECRET_KEY


@pytest.fixture(scope="module")
async def stack_settings(settings: Settings) -> AsyncIterator[Settings]:
    """A stack of its own: with the session's database, the session api's relay would publish these orders."""
    async with fresh_database(settings.database_url, "corr") as url:
        own = settings.model_copy(update={"database_url": url, "amqp_prefix": f"{settings.amqp_prefix}corr"})
        yield _fast(own)
        await delete_amqp_names(own)


@pytest.fixture(scope="module")
async def pool(stack_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(stack_settings)
    yield pool
    await pool.close()


def _fast(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "log_level": "DEBUG",  # the api logs successful requests at debug level
            "sim_pending_s": 0.2,
            "sim_completion_s": 1.0,
            "worker_poll_min_s": 0.3,
            "worker_poll_idle_s": 0.1,
            "worker_submit_linger_s": 0.2,  # both orders in one submission batch
            "webhooks_allow_http": True,
            "webhooks_allowed_networks": RECEIVER_NETWORK,
            "webhook_secret_key": SecretStr(SECRET_KEY),
            "webhook_poll_s": 0.05,
            "webhook_endpoint_rate_per_s": 0.0,
            "metrics_sample_s": 0.2,
            "relay_poll_s": 0.2,
        }
    )


def json_lines(process: ManagedProcess) -> list[dict[str, Any]]:
    lines = []
    for line in process.log_text().splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


async def scrape(session: aiohttp.ClientSession, base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    for path in ("/healthz", "/readyz"):
        async with session.get(base + path) as resp:
            assert resp.status == 200, f"{base}{path}: {resp.status} {await resp.text()}"
    async with session.get(base + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_one_correlation_id_follows_each_order_across_all_processes(
    stack_settings: Settings, pool: asyncpg.Pool, logs_dir: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    receiver = await Receiver().start()
    sim = await SimProcess(stack_settings, logs_dir / f"corr-sim-{run}.log", metrics_port_sim=free_port()).started()
    ids = await make_provider_services(pool, url=sim.api_url, key=stack_settings.sim_key)
    account_id, key = await make_customer(pool, balance="100")
    await register(pool, stack_settings, account_id=account_id, url=receiver.url())
    worker_port, webhooks_port = free_port(), free_port()
    worker = WorkerProcess(stack_settings, logs_dir / f"corr-worker-{run}.log", metrics_port_worker=worker_port)
    env = settings_env(stack_settings, metrics_port_webhooks=webhooks_port, webhook_secret_key=SECRET_KEY)
    webhooks = ManagedProcess("services.webhooks", env, logs_dir / f"corr-webhooks-{run}.log")
    api = ApiProcess(stack_settings, logs_dir / f"corr-api-{run}.log")
    processes: list[ManagedProcess] = [sim, worker, webhooks, api]
    try:
        await worker.started()
        webhooks.start()
        await webhooks.wait_http(f"http://127.0.0.1:{webhooks_port}/readyz")
        await api.started()
        correlation = {f"corr-{run}-a": 0, f"corr-{run}-b": 0}
        async with aiohttp.ClientSession() as session:
            for i, cid in enumerate(correlation):
                form = {"key": key, "action": "add", "service": str(ids["default"]), "quantity": "100",
                        "link": f"https://example.test/p/{run}{i}", "request_id": cid}  # fmt: skip
                async with session.post(api.url + "/api/v2", data=form, headers={"X-Request-ID": cid}) as resp:
                    assert resp.status == 200, await resp.text()
                    assert resp.headers["X-Request-ID"] == cid
                    correlation[cid] = (await resp.json())["order"]
            by_order = {order: cid for cid, order in correlation.items()}

            # Both orders complete upstream and their completion reaches the receiver.
            def completed() -> bool:
                bodies = [json.loads(h.body) for h in receiver.hits]
                done = {b["data"]["order"] for b in bodies if b["type"] == "order.completed"}
                return set(by_order) <= done

            await wait_until(completed, timeout=45)
            async with pool.acquire() as conn:
                rows = await conn.fetch("SELECT id, correlation_id FROM orders WHERE id = ANY($1)", list(by_order))
                stored = {r["id"]: r["correlation_id"] for r in rows}
                outbox_ids = await conn.fetch(
                    "SELECT DISTINCT correlation_id FROM outbox WHERE payload->>'order_id' = ANY($1::text[])"
                    " OR payload->>'order' = ANY($1::text[]) OR EXISTS (SELECT 1 FROM"
                    " jsonb_array_elements_text(payload->'order_ids') e(id) WHERE e.id = ANY($1::text[]))",
                    [str(o) for o in by_order],
                )
                webhook_events = await conn.fetch(
                    "SELECT data->>'order' AS order_id, correlation_id FROM webhook_events"
                    " WHERE data->>'order' = ANY($1::text[])",
                    [str(o) for o in by_order],
                )
            assert stored == by_order  # the api stored it on the order ...
            assert {r["correlation_id"] for r in outbox_ids} == set(correlation)  # ... and on every outbox row
            # ... and the webhooks process on every event it stored (the attempts' log lines take it from there).
            assert webhook_events
            assert all(by_order[int(r["order_id"])] == r["correlation_id"] for r in webhook_events)

            # Metrics of each process, scraped from its own port, say what happened.
            api_m = await scrape(session, f"http://127.0.0.1:{api.ops_port}")
            worker_m = await scrape(session, f"http://127.0.0.1:{worker_port}")
            webhooks_m = await scrape(session, f"http://127.0.0.1:{webhooks_port}")
            sim_m = await scrape(session, f"http://127.0.0.1:{sim.env['PANELFLOW_METRICS_PORT_SIM']}")
    finally:
        for process in reversed(processes):
            process.stop(timeout=20)
        await receiver.stop()

    assert api_m[("panelflow_api_requests_total", frozenset({("action", "add"), ("status", "200")}))] == 2
    assert api_m[("panelflow_outbox_published_total", frozenset())] >= 2
    placed = frozenset({("queue", "worker.orders"), ("event_type", "order.placed"), ("outcome", "ack")})
    assert worker_m[("panelflow_messages_consumed_total", placed)] == 2
    assert worker_m[("panelflow_worker_submissions_total", frozenset({("outcome", "accepted")}))] == 2
    assert worker_m[("panelflow_worker_status_call_ids_count", frozenset())] >= 1
    assert webhooks_m[("panelflow_webhook_deliveries_total", frozenset({("outcome", "succeeded")}))] >= 4
    assert (
        "panelflow_build_info",
        frozenset({("process", "provider_sim"), ("release", stack_settings.release)}),
    ) in sim_m

    # Logs: every line about one of the orders carries that order's correlation id and no other's.
    logs = {name: json_lines(p) for name, p in (("api", api), ("worker", worker), ("webhooks", webhooks))}
    for name, lines in logs.items():
        for line in lines:
            order = line.get("order_id")
            if order in by_order:
                assert line.get("correlation_id") == by_order[order], f"{name}: {line}"
    story: dict[str, dict[str, set[str]]] = {cid: {} for cid in correlation}
    for name, lines in logs.items():
        for line in lines:
            found = line.get("correlation_id")
            if found in story:
                story[found].setdefault(name, set()).add(line["event"])
    for cid, events in story.items():
        assert "request" in events.get("api", set()), f"{cid}: {events}"
        assert {"order_submitted", "order_status_changed"} <= events.get("worker", set()), f"{cid}: {events}"
        assert "webhook_attempt" in events.get("webhooks", set()), f"{cid}: {events}"
