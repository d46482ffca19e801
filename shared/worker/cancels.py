"""Cancels of orders already bought: forwarded upstream once where the service allows it. The outcome is not
decided here: it arrives through status polling (Canceled or Partial, refunded there).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import asyncpg
import structlog

from shared.db.orders import cancels as sql
from shared.db.types import Conn
from shared.settings import Settings
from shared.upstream.results import IdError, UpstreamError
from shared.worker.tx import in_transaction
from shared.worker.upstreams import UnknownProvider, Upstreams

log = structlog.get_logger(__name__)


class Cancels:
    def __init__(self, pool: asyncpg.Pool, upstreams: Upstreams, settings: Settings) -> None:
        self._pool = pool
        self._upstreams = upstreams
        self._settings = settings

    async def requested(self, order_id: int) -> int:
        """`cancel.requested`: note the request (the api did already) and forward it if the order is bought.

        An order not bought yet keeps the request: it is forwarded by the sweeper once the order is in flight.
        """

        async def claim(conn: Conn) -> list[sql.CancelClaim]:
            await sql.request_cancel(conn, order_id=order_id)
            return await sql.claim_cancels(conn, order_ids=[order_id], limit=1)

        return await self._forward(await in_transaction(self._pool, claim))

    async def forward_due(self, *, limit: int = 100) -> int:
        async def claim(conn: Conn) -> list[sql.CancelClaim]:
            return await sql.claim_cancels(conn, order_ids=None, limit=limit)

        return await self._forward(await in_transaction(self._pool, claim))

    async def _forward(self, claims: Sequence[sql.CancelClaim]) -> int:
        # Marked forwarded and committed before the call: a cancel is sent at most once (a lost one is visible
        # in last_error, and the order still ends through polling).
        per_provider: dict[int, list[sql.CancelClaim]] = defaultdict(list)
        errors: dict[int, str] = {}
        for claim in claims:
            if claim.allowed:
                per_provider[claim.provider_id].append(claim)
            else:
                errors[claim.order_id] = "cancel not offered by the service"
        for provider_id, group in per_provider.items():
            by_upstream = {c.provider_order_id: c.order_id for c in group}
            try:
                client = await self._upstreams.client(provider_id)
                answers = await client.cancel(list(by_upstream))
            except (UpstreamError, UnknownProvider) as exc:
                errors.update({order_id: f"cancel not forwarded: {exc}" for order_id in by_upstream.values()})
                continue
            for upstream_id, order_id in by_upstream.items():
                answer = answers.get(upstream_id)
                if isinstance(answer, IdError):
                    errors[order_id] = f"cancel refused upstream: {answer.message}"
                else:
                    log.info("cancel_forwarded", order_id=order_id)
        if errors:

            async def note(conn: Conn) -> None:
                for order_id, error in errors.items():
                    await sql.note_error(conn, order_id=order_id, error=error)

            await in_transaction(self._pool, note)
            for order_id, error in errors.items():
                log.warning("cancel_not_forwarded", order_id=order_id, reason=error)
        return len(claims)
