"""Why an upstream call failed: one `FailureKind` per way it can go wrong, decided where the failure happens.

A kind says whether the request can have reached the provider (`sent`: the caller must then treat the outcome as
unknown) and whether the failure counts against the provider's circuit breaker. Its value is the `kind` label of
`panelflow_upstream_errors_total`; the runbook and the dashboard name some of them (`forbidden`, `redirect`,
`too_large`, `timeout`, `http_5xx`, `connect_failed`), so the values stay as they are.
"""

from __future__ import annotations

from enum import StrEnum


class FailureKind(StrEnum):
    # Nothing left us.
    BREAKER_OPEN = "breaker_open"  # our circuit breaker stopped the call
    NO_SLOT = "no_slot"  # no free connection slot in time
    REFUSED_ADDRESS = "forbidden"  # the URL is invalid, or it (or what it resolves to) is not an allowed address
    CONNECT_TIMEOUT = "connect_timeout"
    CONNECT_FAILED = "connect_failed"  # refused, unreachable, DNS, TLS handshake
    WITHHELD = "withheld"  # connected, but the caller's last check before sending said no (`BeforeSend`)
    REDIRECT = "redirect"  # a 3xx: not followed, so the call went nowhere
    # The request (maybe) reached the provider.
    TIMEOUT = "timeout"
    CONNECTION_LOST = "connection_lost"
    HTTP_5XX = "http_5xx"
    BAD_REPLY = "garbage"  # not JSON (or nested deeper than the parser goes)
    TOO_LARGE = "too_large"  # longer than `upstream_response_max_bytes`


# Failures that say the provider itself is unwell (its breaker counts them), beside every failure after sending.
_UNHEALTHY_UNSENT = frozenset({FailureKind.CONNECT_TIMEOUT, FailureKind.CONNECT_FAILED, FailureKind.REDIRECT})


def counts_against_provider(kind: FailureKind, *, sent: bool) -> bool:
    return sent or kind in _UNHEALTHY_UNSENT


class CallFailed(Exception):
    """One HTTP call to a provider gave no usable answer; `sent` says if the request may have gone out."""

    def __init__(self, kind: FailureKind, reason: str, *, sent: bool) -> None:
        self.kind = kind
        self.reason = reason
        self.sent = sent
        super().__init__(reason)
