"""`panelflow provider add` refuses a URL the worker would refuse to call, saying why; nothing is stored."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from shared.settings import Settings
from tests.cli.conftest import run_cli


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://up.example/api/v2", "url must use https (PANELFLOW_UPSTREAM_ALLOW_HTTP"),
        (
            "https://127.0.0.1:8090/api/v2",
            "url points to a non-public address: 127.0.0.1 (loopback) (PANELFLOW_UPSTREAM_ALLOWED",
        ),
        ("https://localhost/api/v2", "url points to a non-public address: 127.0.0.1 (loopback)"),
        ("https://0x7f.1/api/v2", "url points to a non-public address: 127.0.0.1 (loopback)"),
        ("https://10.1.2.3/api/v2", "url points to a non-public address: 10.1.2.3 (private)"),
        ("https://169.254.169.254/latest", "url points to a non-public address: 169.254.169.254 (cloud-metadata)"),
    ],
)
async def test_provider_add_refuses_non_public_or_plain_http_urls(
    settings: Settings, pool: asyncpg.Pool, url: str, says: str
) -> None:
    strict = settings.model_copy(update={"upstream_allow_http": False, "upstream_allowed_networks": ""})
    name = f"p-{uuid.uuid4().hex[:8]}"
    result = run_cli(strict, "provider", "add", "--name", name, "--url", url, "--key-file", "-", stdin="k")
    result.assert_user_error(says=f"--url refused: {says}")
    assert await pool.fetchval("SELECT count(*) FROM providers WHERE name = $1", name) == 0


async def test_allowed_networks_let_a_development_provider_in(settings: Settings, pool: asyncpg.Pool) -> None:
    # The session's settings allow plain http to 127.0.0.0/8 (the simulator's network), as `make run` does.
    name = f"p-{uuid.uuid4().hex[:8]}"
    result = run_cli(
        settings,
        "provider",
        "add",
        "--name",
        name,
        "--url",
        "http://127.0.0.1:8090/api/v2",
        "--key-file",
        "-",
        stdin="k",
    )
    assert result.code == 0, result
    assert await pool.fetchval("SELECT url FROM providers WHERE id = $1", int(result.out)) == (
        "http://127.0.0.1:8090/api/v2"
    )


async def test_a_host_that_does_not_resolve_now_is_added_with_a_warning(settings: Settings, pool: asyncpg.Pool) -> None:
    name = f"p-{uuid.uuid4().hex[:8]}"
    result = run_cli(
        settings, "provider", "add", "--name", name, "--url", "https://nowhere.invalid/api/v2", "--key-file", "-",
        stdin="k",
    )  # fmt: skip
    assert result.code == 0, result
    assert result.err.strip() == (
        "warning: nowhere.invalid cannot be resolved now; calls to it will fail until it can"
    ), result.err
    assert await pool.fetchval("SELECT name FROM providers WHERE id = $1", int(result.out)) == name
