"""The upstream client of each provider, found by provider id (provider rows are re-read now and then).

Our key at each provider is stored encrypted; it is decrypted here, when the rows are read, and kept in
memory only.
"""

from __future__ import annotations

import time

import asyncpg
import structlog

from shared.catalog.providers import provider_key
from shared.crypto.secretbox import SecretBoxError, provider_key_box
from shared.db import providers as provider_sql
from shared.db.providers import ProviderRow
from shared.settings import Settings
from shared.upstream.client import ProviderClients, UpstreamClient

_REFRESH_S = 30.0

log = structlog.get_logger(__name__)


class UnknownProvider(LookupError):
    pass


class UnreadableProviderKey(UnknownProvider):
    """The provider's key does not decrypt with the configured keys: nothing can be sent to it until an
    operator fixes `PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY`; callers treat it as a provider that is not there."""


class Upstreams:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._clients = ProviderClients(settings)
        self._box = provider_key_box(settings)
        self._endpoints: dict[int, ProviderRow] = {}
        self._keys: dict[int, str | None] = {}  # None: the key does not decrypt
        self._loaded_at = float("-inf")

    async def client(self, provider_id: int) -> UpstreamClient:
        """The provider's client; `UnknownProvider` when the provider is missing or inactive, or its key cannot
        be decrypted (`UnreadableProviderKey`)."""
        endpoint = self._endpoints.get(provider_id)
        if endpoint is None or time.monotonic() - self._loaded_at > _REFRESH_S:
            async with self._pool.acquire() as conn:
                self._endpoints = await provider_sql.providers_by_id(conn)
            self._keys = {pid: self._key(e) for pid, e in self._endpoints.items() if e.active}
            self._loaded_at = time.monotonic()
            endpoint = self._endpoints.get(provider_id)
        if endpoint is None or not endpoint.active:
            raise UnknownProvider(f"provider {provider_id} is missing or inactive")
        key = self._keys.get(provider_id)
        if key is None:
            raise UnreadableProviderKey(
                f"provider {provider_id}: its API key does not decrypt with {self._box.setting}"
            )
        return await self._clients.get(provider_id, url=endpoint.url, key=key, name=endpoint.name)

    def _key(self, endpoint: ProviderRow) -> str | None:
        try:
            return provider_key(self._box, endpoint)
        except SecretBoxError as exc:
            log.error("provider_key_unreadable", provider_id=endpoint.id, error=str(exc))
            return None

    async def close(self) -> None:
        await self._clients.close()
