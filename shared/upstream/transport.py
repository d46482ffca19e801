"""How one upstream provider is reached over HTTP, whatever the call: the transport under `UpstreamClient`.

Form POST of `key` + `action` + parameters to the provider's endpoint through one `aiohttp.ClientSession` per
provider, with timeouts far below aiohttp's 300 s default, at most `upstream_concurrency` calls in flight, and a
circuit breaker. Every connection passes the address guard (`shared.net.guard`: public addresses only, unless
`upstream_allowed_networks` says otherwise), the URL must be https unless `upstream_allow_http`, redirects are
never followed (a 307/308 would re-post our key elsewhere, a 301/302 turn into a GET to wherever it points) and a
reply is read up to `upstream_response_max_bytes`. A call that gives no parsed answer below 500 raises
`CallFailed` with its `FailureKind` and whether the request may have gone out; each failure is logged and counted
by kind, each call's latency and the breaker's state recorded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import aiohttp
import structlog

from shared.net.guard import AddressGuard, ForbiddenDestination, InvalidUrl, forbidden_cause
from shared.observability import metrics
from shared.settings import Settings
from shared.upstream.breaker import BREAKER_STATES, BreakerState, CircuitBreaker
from shared.upstream.failures import CallFailed, FailureKind, counts_against_provider

log = structlog.get_logger(__name__)


# Awaited once the connection is up, just before the request is written: None lets it go out, a reason stops it
# (the call then fails as not sent). The worker commits its "about to send" mark here (shared.worker.sending).
BeforeSend = Callable[[], Awaitable[str | None]]


class _Progress:
    """`sent` is set by the trace signal once the request's first bytes may have been written to the socket."""

    __slots__ = ("before_send", "sent")

    def __init__(self, before_send: BeforeSend | None = None) -> None:
        self.before_send = before_send
        self.sent = False


class _Withheld(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


async def _on_headers_sent(
    _session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    # aiohttp sends this signal after the connection was made and BEFORE it writes the request's headers (the
    # body follows them): until here not one byte of the request has gone out. A connection that failed
    # (refused, unreachable, connect timeout) never gets here.
    progress = ctx.trace_request_ctx
    if not isinstance(progress, _Progress):
        return
    if not progress.sent and progress.before_send is not None:  # once: a redirect sends again, already started
        reason = await progress.before_send()
        if reason is not None:
            raise _Withheld(reason)
    progress.sent = True


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


class ProviderTransport:
    """The HTTP side of one provider: `url` is its full API v2 endpoint, `name` its metric label and log name."""

    def __init__(self, *, url: str, key: str, settings: Settings, name: str = "") -> None:
        self.url = url
        self.name = name or url
        # Metric label: the provider's name, never its URL (labels must stay bounded and free of secrets).
        self._label = name or "unnamed"
        self._key = key
        self._timeout_s = settings.upstream_timeout_s
        self._connect_timeout_s = settings.upstream_connect_timeout_s
        self._concurrency = max(1, settings.upstream_concurrency)
        self._slots = asyncio.Semaphore(self._concurrency)
        self.breaker = CircuitBreaker(
            failures=settings.upstream_breaker_failures, reset_s=settings.upstream_breaker_reset_s
        )
        self._allow_http = settings.upstream_allow_http
        self._max_reply = settings.upstream_response_max_bytes
        self._guard = AddressGuard(settings.upstream_allowed_networks)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        # Built on first use: a ClientSession belongs to the running loop.
        if self._session is None:
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_on_headers_sent)
            self._session = aiohttp.ClientSession(
                connector=self._guard.connector(limit=self._concurrency, limit_per_host=self._concurrency),
                trace_configs=[trace],
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._guard.close()

    # --- one call ---------------------------------------------------------------------------------------------

    async def exchange(
        self, action: str, params: Mapping[str, str | int], before_send: BeforeSend | None = None
    ) -> Reply:
        """One HTTP call. Returns a parsed JSON answer below 500; raises `CallFailed` saying if it was sent."""
        was_probe = self.breaker.state is not BreakerState.CLOSED
        if not self.breaker.allow():
            metrics.UPSTREAM_ERRORS.labels(
                provider=self._label, action=action, kind=FailureKind.BREAKER_OPEN.value
            ).inc()
            raise CallFailed(FailureKind.BREAKER_OPEN, "circuit breaker open", sent=False)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = loop.time() + self._timeout_s
        healthy: bool | None = None  # None: the call said nothing about the provider's health
        try:
            try:
                async with asyncio.timeout(self._timeout_s):
                    await self._slots.acquire()
            except TimeoutError:
                raise CallFailed(FailureKind.NO_SLOT, "no free connection slot in time", sent=False) from None
            try:
                remaining = deadline - loop.time()
                if remaining < self._timeout_s / 2:
                    # The wait for a slot ate most of the budget: a request sent now would likely time out after
                    # going out (an unknown outcome). Not sending it is always safe; the caller retries later.
                    raise CallFailed(
                        FailureKind.NO_SLOT,
                        "no free connection slot in time (too little time left to send)",
                        sent=False,
                    )
                status, raw = await self._post(action, params, remaining, before_send)
            finally:
                self._slots.release()
            if status >= 500:
                healthy = False
                raise CallFailed(FailureKind.HTTP_5XX, f"http {status}", sent=True)
            if 300 <= status < 400:
                # Not followed: the call went nowhere, and the provider is misconfigured (or hostile).
                healthy = False
                raise CallFailed(FailureKind.REDIRECT, f"redirect not followed (http {status})", sent=False)
            try:
                body = json.loads(raw, parse_float=Decimal)
            except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested deeper than the parser goes
                healthy = False
                raise CallFailed(
                    FailureKind.BAD_REPLY, f"unreadable reply (http {status}): {raw[:80]!r}", sent=True
                ) from None
            healthy = True
            return Reply(status, body)
        except CallFailed as failed:
            if counts_against_provider(failed.kind, sent=failed.sent):
                healthy = False
            log.warning(
                "upstream_call_failed",
                provider=self.name,
                action=action,
                kind=failed.kind.value,
                reason=failed.reason,
                sent=failed.sent,
            )
            metrics.UPSTREAM_ERRORS.labels(provider=self._label, action=action, kind=failed.kind.value).inc()
            raise
        finally:
            if healthy is True:
                self.breaker.record_success()
            elif healthy is False:
                self.breaker.record_failure()
            elif was_probe:
                self.breaker.release_probe()
            metrics.UPSTREAM_LATENCY.labels(provider=self._label, action=action).observe(loop.time() - started)
            metrics.set_breaker_state(self._label, self.breaker.state, BREAKER_STATES)

    async def _post(
        self, action: str, params: Mapping[str, str | int], remaining_s: float, before_send: BeforeSend | None
    ) -> tuple[int, bytes]:
        form = {name: str(value) for name, value in params.items()}
        form["key"] = self._key
        form["action"] = action
        timeout = aiohttp.ClientTimeout(total=max(remaining_s, 0.001), sock_connect=self._connect_timeout_s)
        progress = _Progress(before_send)
        try:
            # Literal-IP hosts never reach a resolver: decide them here (the connector checks every socket again).
            self._guard.check_url(self.url, allow_http=self._allow_http)
        except ForbiddenDestination as exc:
            raise CallFailed(
                FailureKind.REFUSED_ADDRESS, f"forbidden destination: {exc.address} ({exc.reason})", sent=False
            ) from None
        except InvalidUrl as exc:
            raise CallFailed(FailureKind.REFUSED_ADDRESS, f"invalid url: {exc}", sent=False) from None
        try:
            async with self._http().post(
                self.url, data=form, timeout=timeout, trace_request_ctx=progress, allow_redirects=False
            ) as resp:
                return resp.status, await self._read_capped(resp)
        except _Withheld as withheld:
            raise CallFailed(FailureKind.WITHHELD, withheld.reason, sent=False) from None
        except TimeoutError:
            if progress.sent:
                raise CallFailed(FailureKind.TIMEOUT, "timeout", sent=True) from None
            raise CallFailed(FailureKind.CONNECT_TIMEOUT, "connection timeout", sent=False) from None
        except (aiohttp.ClientError, OSError) as exc:
            forbidden = forbidden_cause(exc)
            if forbidden is not None:
                raise CallFailed(
                    FailureKind.REFUSED_ADDRESS,
                    f"forbidden destination: {forbidden.address} ({forbidden.reason})",
                    sent=False,
                ) from None
            kind, what = (
                (FailureKind.CONNECTION_LOST, "connection lost")
                if progress.sent
                else (FailureKind.CONNECT_FAILED, "connection failed")
            )
            raise CallFailed(kind, f"{what}: {type(exc).__name__}: {exc}"[:300], sent=progress.sent) from None

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        if resp.content_length is not None and resp.content_length > self._max_reply:
            resp.close()
            raise CallFailed(
                FailureKind.TOO_LARGE, f"reply too large: {resp.content_length} bytes announced", sent=True
            )
        body = bytearray()
        async for chunk in resp.content.iter_chunked(65536):
            body += chunk
            if len(body) > self._max_reply:
                resp.close()  # drop the rest unread: closing is cheaper than draining
                raise CallFailed(FailureKind.TOO_LARGE, f"reply too large: over {self._max_reply} bytes", sent=True)
        return bytes(body)
