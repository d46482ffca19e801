"""Hostile input against the running api: every class of malformed request, fed to every action.

Each answer must be a 400 with a JSON `{"error"}` (naming the parameter where there is one), never a 500,
and nothing may change: balance, orders, refills, webhook endpoints (and their secrets), events, deliveries.
The errors aiohttp answers itself (request line or header too long, malformed HTTP) are JSON as well and
never echo the request, whose line holds the key.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest

from shared.domain.bounds import INT4_MAX
from shared.settings import Settings
from tests.api.conftest import ApiClient, wait_for_service
from tests.support.factories import make_customer, make_service
from tests.support.processes import ApiProcess
from tests.support.webhooks import register

LINK = "https://example.com/post/1"
ACTIONS = (
    "services", "add", "status", "refill", "refill_status", "cancel", "balance", "webhook.add", "webhook.list",
    "webhook.delete", "webhook.test", "webhook.deliveries", "webhook.replay", "webhook.rotate",
)  # fmt: skip
# Unicode forms of digits that str.isdigit() (or int()) takes and the API must not.
DIGIT_FORMS = {"superscript": "²", "arabic-indic": "٣", "fullwidth": "１", "devanagari": "५"}


@dataclass
class World:
    account_id: int
    key: str
    service: int
    drip_service: int
    subscriptions: int
    order: int
    endpoint: int

    def params(self, action: str) -> dict[str, str]:
        """Parameters that make `action` a valid call; the tests break one thing at a time."""
        return {
            "add": {"service": str(self.service), "link": LINK, "quantity": "100", "request_id": f"r-{uuid.uuid4()}"},
            "status": {"order": str(self.order)},
            "refill": {"order": str(self.order)},
            "refill_status": {"refill": "1"},
            "cancel": {"orders": str(self.order)},
            "webhook.add": {"url": "https://example.com/hook"},
            "webhook.delete": {"webhook": str(self.endpoint)},
            "webhook.test": {"webhook": str(self.endpoint)},
            "webhook.deliveries": {"webhook": str(self.endpoint), "limit": "5"},
            "webhook.replay": {"webhook": str(self.endpoint), "since": "0"},
            "webhook.rotate": {"webhook": str(self.endpoint)},
        }.get(action, {})


# The integer parameters of each action (ids are BIGINT, counts INTEGER).
INT_PARAMS: dict[str, tuple[str, ...]] = {
    "add": ("service", "quantity"),
    "status": ("order",),
    "refill": ("order",),
    "refill_status": ("refill",),
    "cancel": ("orders",),
    "webhook.delete": ("webhook",),
    "webhook.test": ("webhook",),
    "webhook.deliveries": ("webhook", "limit"),
    "webhook.replay": ("webhook", "since"),
    "webhook.rotate": ("webhook",),
}
INT_CASES = [(action, name) for action, names in INT_PARAMS.items() for name in names]


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool, client: ApiClient, settings: Settings) -> World:
    account_id, key = await make_customer(pool, balance="100")
    service = await make_service(pool, rate="0.90", min_quantity=10, max_quantity=10_000)
    drip = await make_service(pool, rate="0.90", min_quantity=10, max_quantity=10_000, dripfeed=True)
    subscriptions = await make_service(pool, type="Subscriptions", rate="0.90", min_quantity=1, max_quantity=10_000)
    await wait_for_service(client, key, service, drip, subscriptions)
    placed = await client.call(key, "add", service=service, link=LINK, quantity=100, request_id="hostile-base")
    assert placed.status == 200, placed.body
    local = settings.model_copy(update={"webhooks_allow_http": True, "webhooks_allowed_networks": "127.0.0.0/8"})
    endpoint, _ = await register(pool, local, account_id=account_id, url="http://127.0.0.1:9/hook")
    return World(account_id, key, service, drip, subscriptions, placed.body["order"], endpoint)


async def snapshot(pool: asyncpg.Pool, world: World) -> tuple[Any, ...]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """
                SELECT (SELECT balance FROM accounts WHERE id = $1) AS balance,
                       (SELECT count(*) FROM orders WHERE account_id = $1) AS orders,
                       (SELECT count(*) FROM refills WHERE account_id = $1) AS refills,
                       (SELECT count(*) FROM ledger WHERE account_id = $1) AS ledger,
                       (SELECT array_agg((id, secret_enc, old_secret_enc, enabled) ORDER BY id)::text
                          FROM webhook_endpoints WHERE account_id = $1) AS endpoints,
                       (SELECT count(*) FROM webhook_events WHERE account_id = $1) AS events,
                       (SELECT count(*) FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
                         WHERE e.account_id = $1) AS deliveries,
                       (SELECT count(*) FROM orders WHERE account_id = $1 AND status <> 'pending') AS moved
                """,
            world.account_id,
        )
    assert row is not None
    return tuple(row)


@pytest.fixture
async def unchanged(pool: asyncpg.Pool, world: World) -> Any:
    before = await snapshot(pool, world)
    yield
    assert await snapshot(pool, world) == before, "a refused request changed something"


async def raw_post(http: aiohttp.ClientSession, api: ApiProcess, body: bytes, content_type: str | None) -> Any:
    headers = {"Content-Type": content_type} if content_type else {}
    # skip_auto_headers: a body without a content type must stay without one.
    async with http.post(api.url + "/api/v2", data=body, headers=headers, skip_auto_headers=["Content-Type"]) as resp:
        text = await resp.text()
        assert resp.content_type == "application/json", (resp.status, text)
        return resp.status, json.loads(text)


async def raw_get(http: aiohttp.ClientSession, url: str) -> Any:
    from yarl import URL

    async with http.get(URL(url, encoded=True)) as resp:
        text = await resp.text()
        assert resp.content_type == "application/json", (resp.status, text)
        return resp.status, json.loads(text)


def refused(reply: tuple[int, Any], *, mentions: str | None = None) -> str:
    status, body = reply
    assert status == 400, reply
    assert isinstance(body, dict), reply
    assert isinstance(body.get("error"), str), reply
    if mentions is not None:
        assert mentions in body["error"], reply
    return str(body["error"])


def form(params: dict[str, str]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(params).encode()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- bodies the parsers choke on -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 2_000, 100_000])
@pytest.mark.parametrize("action", ACTIONS)
async def test_deeply_nested_json(
    http: aiohttp.ClientSession, api: ApiProcess, world: World, unchanged: None, action: str, depth: int
) -> None:
    head = json.dumps({"key": world.key, "action": action, **world.params(action)})[:-1]
    body = f'{head}, "link": {nested(depth)}}}'.encode()
    refused(await raw_post(http, api, body, "application/json"))


@pytest.mark.parametrize("depth", [1_000, 2_000])
async def test_deeply_nested_json_without_a_key(
    http: aiohttp.ClientSession, api: ApiProcess, world: World, unchanged: None, depth: int
) -> None:
    # Before authentication: the parsing, not the key, decides.
    refused(await raw_post(http, api, nested(depth).encode(), "application/json"))
    refused(await raw_post(http, api, ('{"a":' * depth + "1" + "}" * depth).encode(), "application/json"))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    "content_type", ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b", None]
)
async def test_a_huge_body_is_a_413(
    http: aiohttp.ClientSession, api: ApiProcess, world: World, unchanged: None, content_type: str | None, chunked: bool
) -> None:
    pad = "a" * 2_000_000
    if content_type and content_type.startswith("multipart"):
        body = (
            f'--b\r\nContent-Disposition: form-data; name="key"\r\n\r\n{world.key}\r\n'
            f'--b\r\nContent-Disposition: form-data; name="pad"\r\n\r\n{pad}\r\n--b--\r\n'
        ).encode()
    elif content_type == "application/json":
        body = json.dumps({"key": world.key, "action": "balance", "pad": pad}).encode()
    else:
        body = form({"key": world.key, "action": "balance", "pad": pad})

    async def stream() -> Any:
        for i in range(0, len(body), 65_536):
            yield body[i : i + 65_536]

    headers = {"Content-Type": content_type} if content_type else {}
    async with http.post(
        api.url + "/api/v2",
        data=stream() if chunked else io.BytesIO(body),
        headers=headers,
        skip_auto_headers=["Content-Type"],
    ) as resp:
        assert resp.status == 413
        assert resp.content_type == "application/json"
        assert await resp.json() == {"error": "Request body too large"}


@pytest.mark.parametrize("action", ACTIONS)
async def test_invalid_utf8_in_every_body_and_the_query(
    http: aiohttp.ClientSession, api: ApiProcess, world: World, unchanged: None, action: str
) -> None:
    base = form({"key": world.key, "action": action, **world.params(action)})
    for content_type in ("application/x-www-form-urlencoded", "text/plain", None):
        refused(await raw_post(http, api, base + b"&link=\xff\xfe", content_type))
        refused(await raw_post(http, api, base + b"&link=%FF%FE", content_type), mentions="link")
    as_json = json.dumps({"key": world.key, "action": action, **world.params(action)}).encode()
    refused(await raw_post(http, api, as_json[:-1] + b', "link": "\xff"}', "application/json"))
    boundary = "b0undary"
    multipart = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\n{world.key}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="action"\r\n\r\n{action}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="link"\r\n\r\n'
        ).encode()
        + b"\xff\xfe\r\n"
        + f"--{boundary}--\r\n".encode()
    )
    refused(await raw_post(http, api, multipart, f"multipart/form-data; boundary={boundary}"))
    query = base.decode()
    refused(await raw_get(http, f"{api.url}/api/v2?{query}&link=%FF%FE"), mentions="link")


@pytest.mark.parametrize("action", ACTIONS)
async def test_broken_multipart(
    http: aiohttp.ClientSession, api: ApiProcess, world: World, unchanged: None, action: str
) -> None:
    body = (
        f'--real\r\nContent-Disposition: form-data; name="key"\r\n\r\n{world.key}\r\n'
        f'--real\r\nContent-Disposition: form-data; name="action"\r\n\r\n{action}\r\n--real--\r\n'
    ).encode()
    refused(await raw_post(http, api, body, "multipart/form-data"))  # no boundary
    refused(await raw_post(http, api, body, "multipart/form-data; boundary=wrong"))
    refused(await raw_post(http, api, b"garbage", "multipart/form-data; boundary=real"))
    # A part header aiohttp's header parser rejects (a control character in the name; found by the fuzzer).
    bad_part = body + b'--real\r\nContent-Disposition: form-data; name="9Zf\x7f"\r\n\r\nx\r\n--real--\r\n'
    refused(await raw_post(http, api, bad_part.replace(b"--real--\r\n", b"", 1), "multipart/form-data; boundary=real"))


@pytest.mark.parametrize("action", ACTIONS)
async def test_duplicate_parameters(
    http: aiohttp.ClientSession, api: ApiProcess, world: World, unchanged: None, action: str
) -> None:
    base = form({"key": world.key, "action": action, **world.params(action)})
    refused(await raw_post(http, api, base + b"&action=balance", None), mentions="action")
    refused(await raw_post(http, api, base + b"&x=1&x=1", "application/x-www-form-urlencoded"), mentions="x")
    head = json.dumps({"key": world.key, "action": action, **world.params(action)})[:-1]
    refused(await raw_post(http, api, f'{head}, "action": "balance"}}'.encode(), "application/json"), mentions="action")
    refused(await raw_get(http, f"{api.url}/api/v2?{base.decode()}&key={world.key}"), mentions="key")


# --- text: NUL, controls, lone surrogates ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["a\x00b", "a\x1bb", "a\x7fb", "\ud800", "x\udfffy"], ids=["nul", "esc", "del", "high", "low"]
)
@pytest.mark.parametrize("action", ACTIONS)
async def test_control_characters_and_lone_surrogates(
    http: aiohttp.ClientSession, api: ApiProcess, world: World, unchanged: None, action: str, bad: str
) -> None:
    name = "link" if action != "add" else "request_id"
    # A JSON escape is the only way to send a lone surrogate; NUL and controls go in forms as well.
    body = json.dumps({"key": world.key, "action": action, **world.params(action), name: bad}).encode()
    refused(await raw_post(http, api, body, "application/json"), mentions=name)
    if not bad.startswith(("\ud800", "x\udfff")):
        params = {"key": world.key, "action": action, **world.params(action), name: bad}
        refused(await raw_post(http, api, form(params), "application/x-www-form-urlencoded"), mentions=name)


async def test_line_breaks_only_where_a_field_is_a_list_of_lines(
    client: ApiClient, world: World, unchanged: None, pool: asyncpg.Pool
) -> None:
    mentions = await make_service(pool, type="Mentions User Followers", rate="0.90", min_quantity=10)
    await wait_for_service(client, world.key, mentions)
    common = {"service": mentions, "link": LINK, "quantity": 100}
    reply = await client.call(world.key, "add", **common, username="alice\nbob", request_id="lines-1")
    assert (reply.status, reply.error) == (400, "Parameter username contains a line break or tab")
    reply = await client.call(world.key, "add", **common, username="alice\x00", request_id="lines-2")
    assert (reply.status, reply.error) == (400, "Parameter username contains a NUL character")


async def test_a_key_header_that_is_not_utf8_is_an_invalid_key(api: ApiProcess, world: World, unchanged: None) -> None:
    request = b"GET /api/v2?action=balance HTTP/1.1\r\nHost: x\r\nX-API-Key: k\xff\xfek\r\nConnection: close\r\n\r\n"
    status, _, body = await raw_exchange(api, request)
    assert (status, json.loads(body)) == (401, {"error": "Invalid API key"})


# --- numbers -----------------------------------------------------------------------------------------------


def refused_or_each_id_refused(reply: Any, name: str) -> None:
    """A bad id in a batch parameter (`orders`) gets its own error in the batch answer, as the contract says."""
    if name == "orders" and reply.status == 200:
        assert reply.body, reply.body
        assert all("error" in str(entry) for entry in reply.body), reply.body
        return
    refused((reply.status, reply.body))


@pytest.mark.parametrize("form_name", sorted(DIGIT_FORMS))
@pytest.mark.parametrize(("action", "name"), INT_CASES)
async def test_unicode_digit_forms(
    client: ApiClient, world: World, unchanged: None, action: str, name: str, form_name: str
) -> None:
    params = {**world.params(action), name: DIGIT_FORMS[form_name]}
    refused_or_each_id_refused(await client.call(world.key, action, **params), name)


OUT_OF_RANGE = [str(INT4_MAX + 1), str(2**63), "9" * 40, "1" * 5_000, "1e1000000", "-1", "+5", "1_000", "1.5"]


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize(("action", "name"), INT_CASES)
async def test_integers_out_of_their_columns_range(
    client: ApiClient, world: World, unchanged: None, action: str, name: str, value: str
) -> None:
    params = {**world.params(action), name: value}
    reply = await client.call(world.key, action, **params)
    if value == str(INT4_MAX + 1) and name in ("limit", "since"):
        assert reply.status == 200, reply  # neither is an INTEGER column: a limit is clamped, a time is a time
        return
    refused_or_each_id_refused(reply, name)


@pytest.mark.parametrize(
    ("service_of", "params", "mentions"),
    [
        ("drip_service", {"quantity": "100", "runs": str(INT4_MAX + 1), "interval": "5"}, "runs"),
        ("drip_service", {"quantity": "100", "runs": "5", "interval": "9" * 30}, "interval"),
        ("drip_service", {"quantity": "10000", "runs": str(INT4_MAX), "interval": "5"}, "too large"),
        ("subscriptions", {"posts": str(INT4_MAX + 1)}, "posts"),
        ("subscriptions", {"old_posts": "9" * 19}, "old_posts"),
        ("subscriptions", {"posts": str(INT4_MAX), "old_posts": "0"}, "too large"),
        ("subscriptions", {"posts": "2", "old_posts": str(INT4_MAX - 1)}, "too large"),
        ("subscriptions", {"delay": "９０"}, "delay"),
    ],
    ids=["runs", "interval", "runs-times-quantity", "posts", "old_posts", "posts-times-max", "old-posts-sum", "delay"],
)
async def test_counts_beyond_their_columns(
    client: ApiClient, world: World, unchanged: None, service_of: str, params: dict[str, str], mentions: str
) -> None:
    base: dict[str, Any] = {"service": getattr(world, service_of), "request_id": f"big-{uuid.uuid4()}"}
    if service_of == "subscriptions":
        base.update(username="alice", min="10", max="1000", posts="3", old_posts="0", delay="30")
    else:
        base.update(link=LINK)
    reply = await client.call(world.key, "add", **{**base, **params})
    refused((reply.status, reply.body), mentions=mentions)


# --- what aiohttp answers before our handler ---------------------------------------------------------------


async def raw_exchange(api: ApiProcess, request: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def protocol_cases(key: str) -> dict[str, Callable[[], bytes]]:
    long_query = f"/api/v2?key={key}&action=balance&pad={'x' * 9000}"
    return {
        "request line too long": lambda: f"GET {long_query} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        "header too long": lambda: (
            f"GET /api/v2?key={key}&action=balance HTTP/1.1\r\nHost: x\r\nX-Pad: {'y' * 9000}\r\n\r\n"
        ).encode(),
        "header name too long": lambda: (
            f"GET /api/v2?key={key}&action=balance HTTP/1.1\r\nHost: x\r\n{'Z' * 9000}: 1\r\n\r\n"
        ).encode(),
        "malformed request line": lambda: f"GET /api/v2?key={key} NOTHTTP\r\n\r\n".encode(),
        "bad method": lambda: f"G\x01T /api/v2?key={key} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        "bad chunked body": lambda: (
            f"POST /api/v2?key={key} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
        ).encode(),
        "content-length and chunked": lambda: (
            f"POST /api/v2?key={key} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc"
        ).encode(),
        "bad header": lambda: f"GET /api/v2?key={key} HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".encode(),
    }


@pytest.mark.parametrize("case", sorted(protocol_cases("k")))
async def test_protocol_errors_are_json_and_never_echo_the_request(
    api: ApiProcess, world: World, unchanged: None, case: str
) -> None:
    status, headers, body = await raw_exchange(api, protocol_cases(world.key)[case]())
    assert status == 400, (status, body)
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert headers.get("cache-control") == "no-store", headers  # like every answer of the api
    assert isinstance(json.loads(body).get("error"), str), body
    assert world.key.encode() not in body
    assert b"api/v2" not in body
    log = api.log_path.read_text()
    assert world.key not in log, "the key reached the api's log"
