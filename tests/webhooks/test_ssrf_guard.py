"""The SSRF guard at registration and at every delivery, with DNS the test controls and real receivers.

No test here sends anything beyond 127.0.0.0/8: forbidden destinations are refused before any connect, and
the hostnames that resolve to them only exist in the test's resolver.
"""

from __future__ import annotations

import asyncio
import functools

import asyncpg
import pytest
from aiohttp import web

from shared.db import webhooks as db
from shared.errors import InvalidParameter
from shared.settings import Settings
from shared.webhooks.secretbox import SecretBox
from tests.support.webhooks import FakeResolver, Receiver, attempts, emit, register, wait_until

PUBLIC = "93.184.216.34"
# One address of every class the guard must refuse.
CLASSES = {
    "loopback": "127.0.0.1",
    "loopback6": "::1",
    "private": "10.0.0.7",
    "private172": "172.16.5.4",
    "private192": "192.168.0.10",
    "link-local": "169.254.10.10",
    "link-local6": "fe80::1",
    "cgnat": "100.64.0.1",
    "multicast": "224.0.0.251",
    "multicast6": "ff02::fb",
    "reserved": "240.0.0.1",
    "documentation": "192.0.2.10",
    "documentation6": "2001:db8::10",
    "benchmarking": "198.18.0.10",
    "unspecified": "0.0.0.0",
    "unspecified6": "::",
    "unique-local": "fd00::10",
    "nat64": "64:ff9b::a00:1",
    "6to4": "2002:a00:1::1",
    "teredo": "2001:0:4136:e378::1",
    "cloud-metadata": "169.254.169.254",
    "cloud-metadata6": "fd00:ec2::254",
    "ipv4-mapped": "::ffff:127.0.0.1",
}


def _literal_url(address: str) -> str:
    return f"https://[{address}]/hook" if ":" in address else f"https://{address}/hook"


@pytest.mark.parametrize("address", list(CLASSES.values()), ids=list(CLASSES))
async def test_registration_refuses_every_class_as_literal_and_as_hostname(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, address: str
) -> None:
    with pytest.raises(InvalidParameter, match="Invalid webhook URL"):
        await register(pool, wh_settings, account_id=account, url=_literal_url(address))
    resolver = FakeResolver({"hooks.example": [address]})
    with pytest.raises(InvalidParameter, match="non-public address"):
        await register(pool, wh_settings, account_id=account, url="https://hooks.example/hook", resolver=resolver)
    assert resolver.queries == ["hooks.example"]


@pytest.mark.parametrize(
    "host", ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0x7f000001", "[::ffff:7f00:1]", "127.0.0.1."]
)
async def test_registration_refuses_odd_notations(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, host: str
) -> None:
    with pytest.raises(InvalidParameter, match="loopback"):
        await register(pool, wh_settings, account_id=account, url=f"https://{host}/hook")


async def test_registration_refuses_a_host_with_any_non_public_address(
    pool: asyncpg.Pool, wh_settings: Settings, account: int
) -> None:
    resolver = FakeResolver({"mixed.example": [PUBLIC, "10.1.1.1"], "fine.example": [PUBLIC]})
    with pytest.raises(InvalidParameter, match="private"):
        await register(pool, wh_settings, account_id=account, url="https://mixed.example/", resolver=resolver)
    endpoint_id, secret = await register(
        pool, wh_settings, account_id=account, url="https://fine.example/", resolver=resolver
    )
    assert endpoint_id > 0
    assert secret.startswith("whsec_")


async def test_registration_requires_https_unless_allowed(
    pool: asyncpg.Pool, wh_settings: Settings, account: int
) -> None:
    strict = wh_settings.model_copy(update={"webhooks_allow_http": False})
    resolver = FakeResolver({"fine.example": [PUBLIC]})
    with pytest.raises(InvalidParameter, match="must use https"):
        await register(pool, strict, account_id=account, url="http://fine.example/", resolver=resolver)
    for bad in ("ftp://fine.example/", "not a url", "https://user:pw@fine.example/", "https:///nohost"):
        with pytest.raises(InvalidParameter):
            await register(pool, wh_settings, account_id=account, url=bad, resolver=resolver)


async def _close_after(_request: web.Request, _r: Receiver) -> web.StreamResponse:
    # No keep-alive: the next delivery needs a new connection, and so a new resolution. (A pooled connection
    # goes to the address checked when it was opened, which is safe.)
    return web.Response(text="ok", headers={"Connection": "close"})


async def test_a_hostname_rebound_to_loopback_after_registration_is_refused_at_delivery(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers
) -> None:
    receiver = await Receiver(_close_after).start()
    resolver = FakeResolver({"rebind.example": [receiver.host]})
    endpoint_id, _ = await register(
        pool, wh_settings, account_id=account, url=receiver.url(host="rebind.example"), resolver=resolver
    )
    # A service of ours on loopback, on the same port: where the attacker wants the request to land.
    trap = await Receiver(host="127.0.0.1").start(port=receiver.port)
    try:
        await dispatchers(resolver=resolver)
        await emit(pool, account_id=account)
        await wait_until(lambda: receiver.hits)
        assert receiver.hits[0].headers["host"] == f"rebind.example:{receiver.port}"  # Host stays the name
        resolver.answers["rebind.example"] = ["127.0.0.1"]
        await emit(pool, account_id=account)
        rows = await wait_until(lambda: _attempts_at_least(pool, endpoint_id, 2))
        assert rows[1]["error"] == "forbidden destination: 127.0.0.1 (loopback)"
        await asyncio.sleep(0.2)
        assert trap.hits == []
        assert len(receiver.hits) == 1
    finally:
        await trap.stop()
        await receiver.stop()


async def _attempts_at_least(pool: asyncpg.Pool, endpoint_id: int, n: int) -> list[asyncpg.Record] | None:
    rows = await attempts(pool, endpoint_id)
    return rows if len(rows) >= n else None


async def test_every_class_is_refused_at_delivery(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers
) -> None:
    many = wh_settings.model_copy(update={"webhook_max_endpoints": 100})
    resolver = FakeResolver({f"c{i}.example": [PUBLIC] for i in range(len(CLASSES))})
    ids = {}
    for i, name in enumerate(CLASSES):
        ids[name], _ = await register(
            pool, many, account_id=account, url=f"https://c{i}.example/hook", resolver=resolver
        )
    for i, address in enumerate(CLASSES.values()):  # the DNS answers change after registration
        resolver.answers[f"c{i}.example"] = [address]
    await dispatchers(resolver=resolver)
    await emit(pool, account_id=account)
    for name, endpoint_id in ids.items():
        rows = await wait_until(functools.partial(attempts, pool, endpoint_id))
        reason = "loopback" if name == "ipv4-mapped" else name.removesuffix("172").removesuffix("192").rstrip("6")
        assert rows[0]["error"].startswith("forbidden destination:"), (name, rows[0]["error"])
        assert rows[0]["error"].endswith(f"({reason})"), (name, rows[0]["error"])


async def test_literal_ip_urls_are_checked_at_delivery_too(
    pool: asyncpg.Pool, wh_settings: Settings, account: int, dispatchers
) -> None:
    trap = await Receiver(host="127.0.0.1").start()
    box = SecretBox(wh_settings)
    urls = [
        f"http://127.0.0.1:{trap.port}/",
        f"http://2130706433:{trap.port}/",
        f"http://0x7f.1:{trap.port}/",
        f"http://[::ffff:127.0.0.1]:{trap.port}/",
    ]
    try:
        # Stored as if registered under a looser policy (an operator has since tightened the allow-list).
        async with pool.acquire() as conn:
            ids = [
                await db.insert_endpoint(
                    conn,
                    account_id=account,
                    url=url,
                    events=["order.status_changed"],
                    secret_enc=box.encrypt("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                    max_endpoints=10,
                )
                for url in urls
            ]
        await dispatchers()
        await emit(pool, account_id=account)
        for endpoint_id in ids:
            assert endpoint_id is not None
            rows = await wait_until(functools.partial(attempts, pool, endpoint_id))
            assert rows[0]["error"].startswith("forbidden destination: "), rows[0]["error"]
            assert rows[0]["error"].endswith("(loopback)")
        assert trap.hits == []
    finally:
        await trap.stop()
