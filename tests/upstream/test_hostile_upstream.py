"""Hostile upstreams are real aiohttp servers: the client follows no redirect, reads no reply past the cap and
connects to no address the guard refuses (loopback here: the session's settings allow 127.0.0.0/8, these tests
narrow that)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from shared.settings import Settings
from shared.upstream.client import UpstreamClient
from shared.upstream.results import Accepted, NotSent, Unknown, UpstreamBadReply, UpstreamUnreachable

ORDER: dict[str, str | int] = {"service": 1, "link": "https://instagram.test/p/abc", "quantity": 100}


@dataclass
class Recorder:
    """A server that answers anything with an order id and remembers every request it got."""

    hits: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    found = Recorder()

    async def anything(request: web.Request) -> web.Response:
        found.hits.append((request.method, request.path_qs))
        return web.json_response({"order": 777})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    found.url = str(server.make_url("/stolen"))
    yield found
    await server.close()


async def serve(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_a_redirect_is_not_followed(code: int, recorder: Recorder, base_settings: Settings) -> None:
    async def redirect(_request: web.Request) -> web.Response:
        return web.Response(status=code, headers={"Location": recorder.url})

    app = web.Application()
    app.router.add_post("/api/v2", redirect)
    server = await serve(app)
    try:
        async with UpstreamClient(url=str(server.make_url("/api/v2")), key="our-key", settings=base_settings) as c:
            assert await c.add(ORDER) == NotSent(f"redirect not followed (http {code})")
            with pytest.raises(UpstreamUnreachable, match="redirect not followed"):
                await c.status(["1"])
    finally:
        await server.close()
    assert recorder.hits == []  # neither our key (307/308) nor a GET (301/302/303) reached the other server


def oversized(chunked: bool, size: int) -> web.Application:
    async def huge(request: web.Request) -> web.StreamResponse:
        body = b'{"order": 1, "pad": "' + b"x" * size + b'"}'
        if not chunked:
            return web.Response(body=body, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, len(body), 65536):
            await resp.write(body[start : start + 65536])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/api/v2", huge)
    return app


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_reply_over_the_cap_is_garbage(chunked: bool, base_settings: Settings) -> None:
    settings = base_settings.model_copy(update={"upstream_response_max_bytes": 100_000})
    server = await serve(oversized(chunked, 300_000))
    small = await serve(oversized(chunked, 50_000))
    try:
        async with UpstreamClient(url=str(server.make_url("/api/v2")), key="k", settings=settings) as client:
            result = await client.add(ORDER)
            assert isinstance(result, Unknown), result
            assert result.reason.startswith("reply too large"), result
            with pytest.raises(UpstreamBadReply, match="reply too large"):
                await client.balance()
        async with UpstreamClient(url=str(small.make_url("/api/v2")), key="k", settings=settings) as client:
            assert await client.add(ORDER) == Accepted("1")
    finally:
        await server.close()
        await small.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "[::ffff:127.0.0.1]"])
async def test_the_address_guard_refuses_non_public_providers(
    host: str, recorder: Recorder, base_settings: Settings
) -> None:
    strict = base_settings.model_copy(update={"upstream_allowed_networks": ""})
    port = recorder.url.split(":")[2].split("/")[0]
    async with UpstreamClient(url=f"http://{host}:{port}/api/v2", key="k", settings=strict) as client:
        result = await client.add(ORDER)
        assert isinstance(result, NotSent), result
        assert result.reason.startswith("forbidden destination: "), result
        assert "(loopback)" in result.reason
        with pytest.raises(UpstreamUnreachable, match="forbidden destination"):
            await client.status(["1"])
    assert recorder.hits == []


async def test_cloud_metadata_stays_refused_whatever_is_allowed(base_settings: Settings) -> None:
    lax = base_settings.model_copy(update={"upstream_allowed_networks": "169.254.0.0/16"})
    async with UpstreamClient(url="http://169.254.169.254/api/v2", key="k", settings=lax) as client:
        assert await client.add(ORDER) == NotSent("forbidden destination: 169.254.169.254 (cloud-metadata)")


async def test_plain_http_is_refused_unless_allowed(recorder: Recorder, base_settings: Settings) -> None:
    strict = base_settings.model_copy(update={"upstream_allow_http": False})
    async with UpstreamClient(url=recorder.url, key="k", settings=strict) as client:
        assert await client.add(ORDER) == NotSent("invalid url: url must use https")
    assert recorder.hits == []
    async with UpstreamClient(url=recorder.url, key="k", settings=base_settings) as client:
        assert await client.add(ORDER) == Accepted("777")
    assert len(recorder.hits) == 1
