"""The upstream client of each provider, found by provider id (provider rows are re-read now and then)."""

from __future__ import annotations

import time

import asyncpg

from shared.db import lifecycle as sql
from shared.settings import Settings
from shared.upstream.client import ProviderClients, UpstreamClient

_REFRESH_S = 30.0


class UnknownProvider(LookupError):
    pass


class Upstreams:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._clients = ProviderClients(settings)
        self._endpoints: dict[int, sql.ProviderEndpoint] = {}
        self._loaded_at = float("-inf")

    async def client(self, provider_id: int) -> UpstreamClient:
        """The provider's client; `UnknownProvider` when the provider is missing or inactive."""
        endpoint = self._endpoints.get(provider_id)
        if endpoint is None or time.monotonic() - self._loaded_at > _REFRESH_S:
            async with self._pool.acquire() as conn:
                self._endpoints = await sql.provider_endpoints(conn)
            self._loaded_at = time.monotonic()
            endpoint = self._endpoints.get(provider_id)
        if endpoint is None or not endpoint.active:
            raise UnknownProvider(f"provider {provider_id} is missing or inactive")
        return await self._clients.get(provider_id, url=endpoint.url, key=endpoint.api_key, name=endpoint.name)

    async def close(self) -> None:
        await self._clients.close()
