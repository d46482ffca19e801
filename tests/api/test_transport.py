"""Transport of `/api/v2`: every way a client may send parameters, JSON everywhere, probes, request ids."""

from __future__ import annotations

import io

import aiohttp
import asyncpg

from tests.api.conftest import ApiClient
from tests.support.factories import make_customer


async def test_get_with_query_parameters(client: ApiClient, pool: asyncpg.Pool) -> None:
    _, key = await make_customer(pool, balance="12.5")
    reply = await client.request("GET", params={"key": key, "action": "balance"})
    assert reply.status == 200
    assert reply.body == {"balance": "12.50", "currency": "USD"}


async def test_post_form(client: ApiClient, pool: asyncpg.Pool) -> None:
    _, key = await make_customer(pool, balance="3")
    reply = await client.call(key, "balance")
    assert (reply.status, reply.body["balance"]) == (200, "3.00")


async def test_post_multipart(client: ApiClient, pool: asyncpg.Pool) -> None:
    _, key = await make_customer(pool, balance="4")
    form = aiohttp.FormData()
    form.add_field("key", key)
    form.add_field("action", "balance")
    form.add_field("upload", b"ignored", filename="x.txt")  # files are not parameters; must not break parsing
    reply = await client.request(data=form)
    assert (reply.status, reply.body["balance"]) == (200, "4.00")


async def test_post_json(client: ApiClient, pool: asyncpg.Pool) -> None:
    _, key = await make_customer(pool, balance="5")
    reply = await client.request(json_body={"key": key, "action": "balance"})
    assert (reply.status, reply.body["balance"]) == (200, "5.00")


async def test_malformed_json_is_a_400(client: ApiClient) -> None:
    reply = await client.request(data=b"{not json", headers={"Content-Type": "application/json"})
    assert reply.status == 400
    assert reply.error == "Request body is not valid JSON"


async def test_body_wins_over_query(client: ApiClient, pool: asyncpg.Pool) -> None:
    _, key = await make_customer(pool)
    reply = await client.request(params={"key": key, "action": "nonsense"}, data={"action": "balance"})
    assert reply.status == 200
    assert "balance" in reply.body
    reply = await client.request(params={"key": key, "action": "balance"}, data={"action": "nonsense"})
    assert reply.status == 400
    assert reply.error == "Invalid action"


async def test_key_in_header(client: ApiClient, pool: asyncpg.Pool) -> None:
    _, key = await make_customer(pool, balance="6")
    reply = await client.request(data={"action": "balance"}, headers={"X-API-Key": key})
    assert (reply.status, reply.body["balance"]) == (200, "6.00")


async def test_unknown_path_and_method_are_json(client: ApiClient) -> None:
    reply = await client.request("GET", "/nowhere")
    assert (reply.status, reply.body) == (404, {"error": "Not found"})
    reply = await client.request("PUT", "/api/v2", data={"action": "balance"})
    assert (reply.status, reply.body) == (405, {"error": "Method not allowed"})


async def test_body_over_the_limit_is_413_json(client: ApiClient, pool: asyncpg.Pool) -> None:
    _, key = await make_customer(pool)
    body = io.BytesIO(f"key={key}&action=balance&pad=".encode() + b"a" * 1_048_576)
    reply = await client.request(data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (reply.status, reply.body) == (413, {"error": "Request body too large"})


async def test_chunked_body_over_the_limit_is_413_json(client: ApiClient, pool: asyncpg.Pool) -> None:
    # No Content-Length: the limit is enforced while reading.
    _, key = await make_customer(pool)

    async def chunks():
        yield f"key={key}&action=balance&pad=".encode()
        for _ in range(20):
            yield b"b" * 65_536

    reply = await client.request(data=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (reply.status, reply.body) == (413, {"error": "Request body too large"})


async def test_probes(client: ApiClient) -> None:
    assert (await client.request("GET", "/healthz")).body == {"status": "ok"}
    ready = await client.request("GET", "/readyz")
    assert (ready.status, ready.body) == (200, {"status": "ok"})


async def test_request_id_is_echoed_or_generated(client: ApiClient) -> None:
    reply = await client.request("GET", "/healthz", headers={"X-Request-ID": "trace-123"})
    assert reply.headers["X-Request-ID"] == "trace-123"
    first = await client.request("GET", "/healthz")
    second = await client.request("GET", "/healthz")
    assert first.headers["X-Request-ID"]
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


async def test_every_answer_says_no_store(client: ApiClient, pool: asyncpg.Pool) -> None:
    _, key = await make_customer(pool, balance="7")
    answers = [
        await client.call(key, "balance"),  # 200
        await client.request("GET", params={"key": key, "action": "balance"}),  # 200 over GET
        await client.call(key, "nonsense"),  # 400
        await client.call("pf_wrong", "balance"),  # 401
        await client.call(None, "balance"),  # 401, no key
        await client.request("GET", "/nowhere"),  # 404
        await client.request("PUT"),  # 405
    ]
    assert [a.status for a in answers] == [200, 200, 400, 401, 401, 404, 405]
    for answer in answers:
        assert answer.headers.get("Cache-Control") == "no-store", answer
