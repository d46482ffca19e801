"""A broker restart while the worker consumes: its consumer comes back by itself and takes new orders.

A PRIVATE RabbitMQ node (the machine's shared one is never touched). The sweeper's grace period is pushed out
of reach, so only a re-established consumer can explain the orders placed after the restart being bought.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from shared.messaging.relay import OutboxRelay
from shared.ordering.placement import Placer
from shared.settings import Settings
from tests.support.factories import make_account
from tests.support.private_services import PrivateRabbit, private_rabbit
from tests.support.worker import SimProcess, WorkerProcess, order_row, place, unique_link, wait_for

__all__ = ["private_rabbit"]


@pytest.fixture
async def rabbit_settings(wsettings: Settings, private_rabbit: PrivateRabbit) -> Settings:
    return wsettings.model_copy(
        update={
            "amqp_url": private_rabbit.url,
            "amqp_prefix": f"{wsettings.amqp_prefix}r{uuid.uuid4().hex[:4]}",
            "worker_submit_grace_s": 3600.0,
        }
    )


async def test_consumer_resumes_after_a_broker_restart(
    wpool: asyncpg.Pool,
    rabbit_settings: Settings,
    private_rabbit: PrivateRabbit,
    placer: Placer,
    catalog: dict[str, int],
    sim: SimProcess,
    logs_dir: Path,
) -> None:
    relay = OutboxRelay(rabbit_settings, wpool)
    await relay.start()
    worker = await WorkerProcess(rabbit_settings, logs_dir / "worker-broker-restart.log").started()
    try:
        account = await make_account(wpool, balance="100")

        async def bought(order_id: int) -> bool:
            return (await order_row(wpool, order_id))["provider_order_id"] is not None

        before = await place(
            placer, wpool, account_id=account, service_id=catalog["default"], link=unique_link(), quantity=100
        )
        await wait_for(lambda: bought(before), timeout=20)

        await private_rabbit.stop()
        log_mark = len(worker.log_text())
        await private_rabbit.start()
        after = [
            await place(
                placer, wpool, account_id=account, service_id=catalog["default"], link=unique_link(), quantity=100
            )
            for _ in range(5)
        ]
        for order_id in after:
            await wait_for(lambda order_id=order_id: bought(order_id), timeout=60, interval=0.3)  # type: ignore[misc]
        assert worker.alive()
        assert '"consumer_started"' in worker.log_text()[log_mark:], "the consumer subscribed again"
    finally:
        worker.stop()
        await relay.stop()
