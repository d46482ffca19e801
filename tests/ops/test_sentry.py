"""Sentry as the processes configure it, captured by a local ingest server: environment, release, no secrets."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from shared.settings import Settings
from tests.ops.sentry_sink import SentrySink
from tests.support.factories import make_customer
from tests.support.processes import ROOT, ApiProcess, settings_env
from tests.support.webhooks import wait_until

API_KEY = "pf_" + "A1b2C3d4E5f6G7h8I9j0" * 2
WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWJ5dGVz" * 2
UPSTREAM_KEY = "upstream-" + "k3y" * 8


@pytest.fixture
async def sink() -> AsyncIterator[SentrySink]:
    server = await SentrySink().start()
    yield server
    await server.stop()


def sentry_settings(settings: Settings, sink: SentrySink) -> Settings:
    return settings.model_copy(
        update={"sentry_dsn": SecretStr(sink.dsn), "sentry_environment": "ops-test", "release": "panelflow@9.9.9"}
    )


async def test_a_process_error_reaches_sentry_with_environment_and_release_and_no_secrets(
    settings: Settings, sink: SentrySink
) -> None:
    # The same init as every process's __main__, with secrets in the frame's locals, in a message and in a dict.
    script = textwrap.dedent(
        f"""
        import sentry_sdk
        from shared.sentry import init_sentry
        from shared.settings import Settings

        def submit(api_key, form, webhook_secret):
            raise RuntimeError("upstream refused key={UPSTREAM_KEY} for {API_KEY} signing {WEBHOOK_SECRET}")

        assert init_sentry(Settings(), "worker")
        try:
            submit("{API_KEY}", {{"key": "{UPSTREAM_KEY}", "action": "add"}}, "{WEBHOOK_SECRET}")
        except RuntimeError as exc:
            sentry_sdk.capture_exception(exc)
        sentry_sdk.flush(10)
        """
    )
    env = settings_env(sentry_settings(settings, sink))
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    (event,) = sink.events()
    assert '"environment":"ops-test"' in event.replace(" ", "")
    assert "panelflow@9.9.9" in event
    assert "upstream refused" in event  # the error itself got there
    assert '"submit"' in event  # with its frame (whose locals held the secrets) ...
    assert "[Filtered]" in event  # ... scrubbed, not merely left out
    for secret in (API_KEY, WEBHOOK_SECRET, UPSTREAM_KEY):
        assert secret not in event


async def test_an_api_500_reaches_sentry_without_the_callers_key(
    settings: Settings, pool, sink: SentrySink, logs_dir: Path
) -> None:
    _, key = await make_customer(pool)
    api = ApiProcess(
        sentry_settings(settings, sink),
        logs_dir / "api-sentry.log",
        failpoints="api.handler=raise",
        relay_enabled=False,
    )
    await api.started()
    try:
        async with aiohttp.ClientSession() as session:
            form = {"key": key, "action": "balance"}
            async with session.post(api.url + "/api/v2", data=form, headers={"X-Request-ID": "sentry-1"}) as resp:
                assert resp.status == 500
                assert await resp.json() == {"error": "Internal server error"}
        await wait_until(lambda: sink.events(), timeout=15)
    finally:
        api.stop()
    (event,) = sink.events()
    assert "failpoint api.handler" in event
    assert '"environment":"ops-test"' in event.replace(" ", "")
    assert "panelflow@9.9.9" in event
    assert key not in event
