"""A hostile upstream provider (a real aiohttp app) cannot stall the worker or fail a batch with what it says:
numbers out of any column's range are garbage read in microseconds, texts with NUL or lone surrogates are
stored cleaned, an order id we could not store parks the order instead of failing its transaction."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from shared.catalog import providers
from shared.db import catalog as catalog_sql
from shared.ordering.placement import Placer
from shared.settings import Settings
from shared.upstream import normalize
from shared.upstream.results import IdError, OrderReport
from tests.support.factories import make_account, provider_box
from tests.support.processes import free_port
from tests.support.worker import order_row, place, unique_link, wait_for
from tests.worker.components import worker_parts

HUGE = {"status": "In progress", "remains": "1e1000000", "start_count": "9e999999999", "charge": "1e1000000"}


class HostileUpstream:
    """Speaks API v2 and says what it is told: `entries[upstream id]` is that order's `status` entry."""

    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}
        self.add_answers: dict[str, Any] = {}  # by link; otherwise a new numeric id
        self._ids = itertools.count(7001)
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        action = form.get("action")
        if action == "add":
            answer = self.add_answers.get(str(form.get("link")), {"order": next(self._ids)})
        elif action == "status":
            ids = str(form.get("orders") or form.get("order") or "").split(",")
            answer = {i: self.entries.get(i, {"error": "Incorrect order ID"}) for i in ids}
        else:
            answer = {"error": "Incorrect request"}
        # ensure_ascii: NUL and lone surrogates travel as JSON escapes, the way a hostile panel sends them.
        return web.Response(body=json.dumps(answer, ensure_ascii=True).encode(), content_type="application/json")

    async def start(self) -> HostileUpstream:
        app = web.Application()
        app.router.add_post("/api/v2", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/api/v2"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def hostile() -> AsyncIterator[HostileUpstream]:
    upstream = await HostileUpstream().start()
    yield upstream
    await upstream.stop()


async def hostile_service(pool: asyncpg.Pool, upstream: HostileUpstream) -> int:
    async with pool.acquire() as conn:
        provider_id = await providers.add_provider(
            conn, provider_box(), name=f"hostile-{uuid.uuid4().hex[:8]}", url=upstream.url, api_key="k"
        )
        return await catalog_sql.add_service(
            conn, name="hostile", type="Default", rate=Decimal(1), min_quantity=1, max_quantity=1000,
            provider_id=provider_id, provider_service_id="1",
        )  # fmt: skip


def test_a_huge_number_in_a_status_reply_is_read_in_microseconds() -> None:
    durations = []
    for _ in range(20):
        started = time.perf_counter()
        report = normalize.order_report(dict(HUGE))
        durations.append(time.perf_counter() - started)
    assert isinstance(report, OrderReport)
    assert (report.status, report.remains, report.start_count, report.charge) == ("In progress", None, None, None)
    assert min(durations) < 0.001, durations  # int() of it took ~25 s of CPU before it was bounded


def test_an_upstream_error_text_is_cleaned() -> None:
    report = normalize.order_report({"error": "Incorrect\x00 order \ud800 ID\x1b"})
    assert isinstance(report, IdError)
    assert report.message == "Incorrect\ufffd order \ufffd ID\ufffd"


async def test_a_hostile_upstream_cannot_stall_or_fail_the_worker(
    wpool: asyncpg.Pool, placer: Placer, wsettings: Settings, hostile: HostileUpstream, ledger_clean: None
) -> None:
    service = await hostile_service(wpool, hostile)
    account = await make_account(wpool, balance="10")
    followed = await place(placer, wpool, account_id=account, service_id=service, link=unique_link(), quantity=100)
    garbled = await place(placer, wpool, account_id=account, service_id=service, link=unique_link(), quantity=100)
    refused_link, bad_id_link = unique_link(), unique_link()
    hostile.add_answers[refused_link] = {"error": "Incorrect link\x00 \ud800"}
    hostile.add_answers[bad_id_link] = {"order": "70\x00" + "9" * 10}
    refused = await place(placer, wpool, account_id=account, service_id=service, link=refused_link, quantity=100)
    bad_id = await place(placer, wpool, account_id=account, service_id=service, link=bad_id_link, quantity=100)

    async with worker_parts(wpool, wsettings) as parts:
        await parts.submitter.submit_named([followed, garbled, refused, bad_id])
        rows = {o: await order_row(wpool, o) for o in (followed, garbled, refused, bad_id)}
        assert rows[followed]["status"] == rows[garbled]["status"] == "in_progress"
        # A refusal's text is stored cleaned, and the order is refunded as any refusal.
        assert rows[refused]["status"] == "canceled"
        assert "Incorrect link\ufffd \ufffd" in rows[refused]["last_error"]
        # An id we could not store or send back is an answer we cannot follow: parked, never bought again.
        assert rows[bad_id]["status"] == "unknown"

        # Both followed orders are polled in one batch: one with absurd numbers, one with a dirty error text.
        hostile.entries[rows[followed]["provider_order_id"]] = dict(HUGE)
        hostile.entries[rows[garbled]["provider_order_id"]] = {"error": "Not found\x00\ud800"}
        polls = {o: rows[o]["polls"] for o in (followed, garbled)}

        async def polled() -> bool:
            started = time.perf_counter()
            await parts.poller.poll_once()
            assert time.perf_counter() - started < 5.0  # a stalled loop would take many seconds per number
            now = {o: (await order_row(wpool, o))["polls"] for o in polls}
            return all(now[o] > before for o, before in polls.items())

        await wait_for(polled, timeout=15)
        row, other = await order_row(wpool, followed), await order_row(wpool, garbled)
        assert (row["status"], row["remains"], row["start_count"]) == ("in_progress", None, None)
        assert other["status"] == "in_progress"
        assert other["last_error"] == "Not found\ufffd\ufffd"

        # Still followable: once the upstream talks sense the order completes.
        hostile.entries[row["provider_order_id"]] = {"status": "Completed", "remains": "0", "start_count": "12"}

        async def completed() -> bool:
            await parts.poller.poll_once()
            return bool((await order_row(wpool, followed))["status"] == "completed")

        await wait_for(completed, timeout=15)
    assert (await order_row(wpool, followed))["start_count"] == 12
