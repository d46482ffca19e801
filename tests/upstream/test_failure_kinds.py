"""Each way an upstream call fails is counted under its own kind in `panelflow_upstream_errors_total`, against the
simulator and small aiohttp servers as real providers. The runbook and the dashboard name these label values."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY

from shared.settings import Settings
from shared.upstream.client import UpstreamClient
from shared.upstream.failures import FailureKind
from shared.upstream.results import NotSent, Unknown
from tests.support.processes import free_port
from tests.support.sim import SimControl

ORDER: dict[str, str | int] = {"service": 1, "link": "https://instagram.test/p/abc", "quantity": 100}


def errors(provider: str) -> dict[str, float]:
    """The provider's `add` error counts by kind (only kinds it has)."""
    return {
        kind.value: value
        for kind in FailureKind
        if (
            value := REGISTRY.get_sample_value(
                "panelflow_upstream_errors_total", {"provider": provider, "action": "add", "kind": kind.value}
            )
        )
        is not None
    }


async def add_once(url: str, settings: Settings, **kwargs: object) -> tuple[str, object]:
    name = f"kinds-{uuid.uuid4().hex[:8]}"  # a provider label of its own: counts start at nothing
    async with UpstreamClient(url=url, key="k", settings=settings, name=name) as client:
        result = await client.add(ORDER, **kwargs)  # type: ignore[arg-type]
    return name, result


@pytest.fixture
async def odd_provider() -> AsyncIterator[str]:
    """Answers a redirect on /moved and an oversized reply on /huge."""

    async def moved(_request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "https://elsewhere.test/"})

    async def huge(_request: web.Request) -> web.Response:
        return web.Response(body=b'{"order": 1, "pad": "' + b"x" * 5000 + b'"}', content_type="application/json")

    app = web.Application()
    app.router.add_post("/moved", moved)
    app.router.add_post("/huge", huge)
    async with TestServer(app, host="127.0.0.1", port=free_port()) as server:
        yield str(server.make_url("/"))


@pytest.mark.parametrize(
    ("marker", "kind"),
    [
        ("5xx:503", FailureKind.HTTP_5XX),
        ("garbage", FailureKind.BAD_REPLY),
        ("ghost", FailureKind.CONNECTION_LOST),
        ("timeout", FailureKind.TIMEOUT),
    ],
)
async def test_failures_after_sending(
    marker: str, kind: FailureKind, sim: SimControl, client_settings: Settings
) -> None:
    name = f"kinds-{uuid.uuid4().hex[:8]}"
    async with UpstreamClient(url=sim.api_url, key=sim.key, settings=client_settings, name=name) as client:
        result = await client.add({**ORDER, "link": f"https://instagram.test/p/abc?sim={marker}"})
    assert isinstance(result, Unknown), result
    assert errors(name) == {kind.value: 1}


async def test_failures_before_sending(odd_provider: str, client_settings: Settings) -> None:
    refused, result = await add_once(f"http://127.0.0.1:{free_port()}/api/v2", client_settings)
    assert isinstance(result, NotSent)
    assert errors(refused) == {"connect_failed": 1}

    moved, result = await add_once(f"{odd_provider}moved", client_settings)
    assert isinstance(result, NotSent)
    assert errors(moved) == {"redirect": 1}

    strict = client_settings.model_copy(update={"upstream_allowed_networks": ""})
    forbidden, result = await add_once(f"{odd_provider}moved", strict)
    assert isinstance(result, NotSent)
    assert errors(forbidden) == {"forbidden": 1}

    async def no() -> str:
        return "not sent: the claim moved on"

    withheld, result = await add_once(f"{odd_provider}moved", client_settings, before_send=no)
    assert result == NotSent("not sent: the claim moved on")
    assert errors(withheld) == {"withheld": 1}


async def test_too_large_and_breaker_open(odd_provider: str, client_settings: Settings) -> None:
    small = client_settings.model_copy(update={"upstream_response_max_bytes": 1000, "upstream_breaker_failures": 1})
    name = f"kinds-{uuid.uuid4().hex[:8]}"
    async with UpstreamClient(url=f"{odd_provider}huge", key="k", settings=small, name=name) as client:
        assert isinstance(await client.add(ORDER), Unknown)
        assert errors(name) == {"too_large": 1}
        assert await client.add(ORDER) == NotSent("circuit breaker open")  # one failure opened it
    assert errors(name) == {"too_large": 1, "breaker_open": 1}
