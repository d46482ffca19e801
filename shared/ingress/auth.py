"""Authentication and authorisation of API calls, with an in-process cache of key records.

key -> format check (a key that `generate_key` cannot have made is refused at once) -> SHA-256 (both skipped for
a key seen lately: a bounded map from the key text to its hash, private to the cache, never logged) -> cache (TTL
`auth_cache_ttl_s`, unknown keys cached too, at most `auth_cache_max_entries`, least recently used out first) ->
`shared.db.keys.find_by_hash`.
`panelflow_auth` notifications (`account:<id>`) drop an account's entries at once, so a revoked key or a
suspended account is refused within a moment; the TTL is the backstop when a notification is lost.
Each accepted key's use is noted in memory (`usage`, shared/ingress/key_usage.py), written in batches.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import time
from collections import OrderedDict
from dataclasses import dataclass

import asyncpg
import structlog

from shared.auth.keys import ACTION_SCOPES, hash_key, well_formed
from shared.db import keys as sql
from shared.db.keys import KeyRecord
from shared.errors import AccountSuspended, InvalidApiKey, IpNotAllowed, ScopeDenied
from shared.ingress.key_usage import KeyUsage
from shared.net.networks import Network, parse_networks
from shared.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated key: its record and its parsed IP allow-list (None: any address)."""

    record: KeyRecord
    networks: tuple[Network, ...] | None


@dataclass(slots=True)
class _Entry:
    caller: Caller | None
    expires: float


class KeyCache:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._ttl = settings.auth_cache_ttl_s
        # Unknown keys are cached too: a flood of random well-formed keys must not grow the cache without bound, nor
        # push out the keys in use (least recently used entries go first).
        self._max_entries = max(1, settings.auth_cache_max_entries)
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._in_flight: dict[bytes, asyncio.Future[Caller | None]] = {}
        # Well-formed key texts seen lately -> their SHA-256, at most `_max_entries` (oldest out first): the same
        # keys arrive on every request, so neither the format check nor the hash runs per request. Only a
        # recomputation is saved: the hash found here is still compared in constant time with the stored one.
        self._hashes: dict[str, bytes] = {}
        # Bumped by every invalidation: a lookup that started before it must not store its (stale) result.
        self._generation = 0
        self.usage = KeyUsage(pool, settings.key_last_use_flush_s)

    async def authenticate(self, key: str | None) -> Caller:
        """The caller of `key`; `InvalidApiKey` for a missing, unknown or revoked key (one identical error)."""
        if not key:
            raise InvalidApiKey()
        key_hash = self._hashes.get(key)
        if key_hash is None:
            if not well_formed(key):
                raise InvalidApiKey()
            key_hash = self._hashes[key] = hash_key(key)
            if len(self._hashes) > self._max_entries:
                del self._hashes[next(iter(self._hashes))]
        entry = self._entries.get(key_hash)
        if entry is not None and entry.expires > time.monotonic():
            self._entries.move_to_end(key_hash)
            caller = entry.caller
        else:
            caller = await self._lookup(key_hash)
        if caller is None or caller.record.revoked or not hmac.compare_digest(caller.record.key_hash, key_hash):
            raise InvalidApiKey()
        self.usage.note(caller.record.key_id)
        return caller

    async def _lookup(self, key_hash: bytes) -> Caller | None:
        # Concurrent requests with the same uncached key share one database read.
        pending = self._in_flight.get(key_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Caller | None] = asyncio.get_running_loop().create_future()
        self._in_flight[key_hash] = future
        generation = self._generation
        try:
            async with self._pool.acquire(timeout=self._settings.db_acquire_timeout_s) as conn:
                record = await sql.find_by_hash(conn, key_hash)
            caller = None if record is None else Caller(record, _networks(record))
            if generation == self._generation:
                self._entries[key_hash] = _Entry(caller, time.monotonic() + self._ttl)
                self._entries.move_to_end(key_hash)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
            future.set_result(caller)
            return caller
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so an unawaited future does not warn
            raise
        finally:
            del self._in_flight[key_hash]

    def on_notify(self, payload: str) -> None:
        kind, _, value = payload.partition(":")
        if kind == "account" and value.isdigit():
            self.invalidate_account(int(value))
        else:
            self.clear()

    def invalidate_account(self, account_id: int) -> None:
        self._generation += 1
        # Negative entries go too: a key created just now may have been tried (and cached as unknown) before.
        stale = [h for h, e in self._entries.items() if e.caller is None or e.caller.record.account_id == account_id]
        for key_hash in stale:
            del self._entries[key_hash]
        log.debug("auth_cache_invalidated", account_id=account_id, entries=len(stale))

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()


def _networks(record: KeyRecord) -> tuple[Network, ...] | None:
    if record.allow_ips is None or not record.allow_ips:
        return None
    return parse_networks(",".join(record.allow_ips))


def check_address(caller: Caller, client_ip: str) -> None:
    if caller.networks is None:
        return
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError as exc:
        raise IpNotAllowed() from exc
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not any(ip in net for net in caller.networks):
        raise IpNotAllowed()


def check_account(caller: Caller) -> None:
    if caller.record.account_status != "active":
        raise AccountSuspended()


def check_scope(caller: Caller, action: str) -> None:
    scope = ACTION_SCOPES.get(action)
    if scope is None or scope not in caller.record.scopes:
        raise ScopeDenied()
