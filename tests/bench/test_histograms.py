"""Reading a histogram from a real `/metrics` page (bench/histograms.py), as the benchmark reads the placement
batch sizes from the api: what was observed between two scrapes, per bucket range."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bench.histograms import distribution, scrape
from tests.support.processes import free_port


async def test_the_observations_between_two_scrapes() -> None:
    registry = CollectorRegistry()
    sizes = Histogram("batch_size", "orders per statement", buckets=(1, 2, 4, 8), registry=registry)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    sizes.observe(1)  # before the first scrape: not counted
    async with TestServer(app, host="127.0.0.1", port=free_port()) as server:
        url = str(server.make_url("/metrics"))
        before = await scrape(url, "batch_size")
        for size in (1, 2, 2, 3, 8, 20):
            sizes.observe(size)
        after = await scrape(url, "batch_size")
    found = distribution(before, after)
    assert found["count"] == 6
    assert found["mean"] == 6.0
    assert found["buckets"] == {"1": 1, "2": 2, "3-4": 1, "5-8": 1, ">8": 1}
    assert found["share"]["2"] == 0.333
