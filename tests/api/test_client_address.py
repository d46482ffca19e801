"""The caller's address behind proxies: every X-Forwarded-For line counts, read from the right; the allow-list and
the ip rate-limit layer see the real client. IPv6 callers share the ip layer per /64."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from shared.ingress.client_address import ClientAddress, rate_limit_bucket
from shared.net.networks import parse_ip
from shared.settings import Settings
from tests.api.conftest import ApiClient
from tests.support.factories import make_account, make_key
from tests.support.processes import ApiProcess

# The api trusts only 127.0.0.1 (the proxy below connects from there); each test's client reaches the proxy
# from an address of its own that the api does not trust.
LIMITS = {
    "rate_limits_enabled": True,
    "rate_limit_ip_per_min": 5,
    "rate_limit_key_default_per_min": 1000,
    "trusted_proxies": "127.0.0.1/32",
    "relay_enabled": False,
}


@pytest.fixture(scope="module")
async def behind_proxy(settings: Settings, logs_dir: Path) -> AsyncIterator[ApiProcess]:
    process = await ApiProcess(settings, logs_dir / "api-behind-proxy.log", **LIMITS).started()
    yield process
    process.stop()


def appending_proxy(upstream: str) -> web.Application:
    """A reverse proxy that keeps the client's X-Forwarded-For line and appends one of its own, as many do."""

    async def forward(request: web.Request) -> web.Response:
        headers = [(k, v) for k, v in request.headers.items() if k.lower() in ("x-forwarded-for", "content-type")]
        headers.append(("X-Forwarded-For", request.remote or ""))
        async with (
            aiohttp.ClientSession() as session,
            session.post(upstream + request.path, data=await request.read(), headers=headers) as resp,
        ):
            return web.Response(status=resp.status, body=await resp.read(), content_type=resp.content_type)

    app = web.Application()
    app.router.add_post("/api/v2", forward)
    return app


@pytest.fixture
async def via_proxy(behind_proxy: ApiProcess, request: pytest.FixtureRequest) -> AsyncIterator[ApiClient]:
    server = TestServer(appending_proxy(behind_proxy.url), host="127.0.0.1")
    await server.start_server()
    connector = aiohttp.TCPConnector(local_addr=(request.param, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield ApiClient(session, str(server.make_url("")).rstrip("/"))
    await server.close()


@pytest.mark.parametrize("via_proxy", ["127.0.0.3"], indirect=True)
async def test_a_spoofed_forwarded_line_does_not_pass_the_allow_list(via_proxy: ApiClient, pool: asyncpg.Pool) -> None:
    account_id = await make_account(pool)
    spoofed_only = await make_key(pool, account_id=account_id, allow_ips=["10.1.2.3/32"])
    real = await make_key(pool, account_id=account_id, allow_ips=["127.0.0.3/32"])
    spoof = {"X-Forwarded-For": "10.1.2.3"}
    refused = await via_proxy.call_with_headers(spoof, spoofed_only, "balance")
    assert (refused.status, refused.error) == (403, "This API key is not allowed from this IP address")
    assert (await via_proxy.call_with_headers(spoof, real, "balance")).status == 200


@pytest.mark.parametrize("via_proxy", ["127.0.0.4"], indirect=True)
async def test_the_ip_layer_counts_the_real_client_whatever_it_writes(via_proxy: ApiClient) -> None:
    statuses = []
    for _ in range(6):
        # A fresh forged address on every call: with the first line trusted, each would get a budget of its own.
        forged = {"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250 + 1}"}
        statuses.append((await via_proxy.call_with_headers(forged, "pf_wrong", "balance")).status)
    assert statuses == [401] * 5 + [429]


async def test_ipv6_callers_share_the_ip_layer_per_64(behind_proxy: ApiProcess, http: aiohttp.ClientSession) -> None:
    client = ApiClient(http, behind_proxy.url)  # from 127.0.0.1: the trusted proxy itself
    net = f"2001:db8:{uuid.uuid4().int % 0xFFFF:x}:1"
    statuses = []
    for n in range(6):  # six addresses of one /64, as a client rotating through its own network would
        reply = await client.call_with_headers({"X-Forwarded-For": f"{net}::{n + 1:x}"}, "pf_wrong", "balance")
        statuses.append(reply.status)
    assert statuses == [401] * 5 + [429]
    other_64 = f"{net[:-2]}:2::1"
    assert (await client.call_with_headers({"X-Forwarded-For": other_64}, "pf_wrong", "balance")).status == 401


def test_hops_are_read_from_the_right() -> None:
    address = ClientAddress("127.0.0.1/32, 10.20.0.0/16")
    peer = parse_ip("127.0.0.1")
    assert peer is not None

    def client(*lines: str) -> str:
        assert peer is not None
        return str(address.from_hops(list(lines), peer))

    assert client("6.6.6.6", "1.2.3.4") == "1.2.3.4"  # the client's own line first, the proxy's after it
    assert client("6.6.6.6, 1.2.3.4, 10.20.0.7") == "1.2.3.4"  # through two proxies of ours
    assert client("1.2.3.4, garbage") == "127.0.0.1"  # not an address: stop at the proxy that passed it
    assert client("::ffff:1.2.3.4") == "1.2.3.4"
    assert client() == "127.0.0.1"
    assert client("10.20.0.9") == "10.20.0.9"  # only our proxies: the left-most of them


def test_rate_limit_buckets() -> None:
    assert rate_limit_bucket("203.0.113.7", 64) == "203.0.113.7"
    assert rate_limit_bucket("2001:db8:1:2:aaaa::1", 64) == "2001:db8:1:2::/64"
    assert rate_limit_bucket("2001:db8:1:2:aaaa::1", 48) == "2001:db8:1::/48"
    assert rate_limit_bucket("2001:db8::1", 128) == "2001:db8::1/128"
    assert rate_limit_bucket("not-an-ip", 64) == "not-an-ip"
