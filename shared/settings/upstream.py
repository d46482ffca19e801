"""Calls to the upstream providers (other panels speaking API v2) that orders are bought from."""

from __future__ import annotations

from pydantic import BaseModel

from shared.settings.field import setting


class Upstream(BaseModel):
    """Upstream providers

    How the worker (and `panelflow provider`/`services` commands) call the panels orders are bought from.
    """

    upstream_connect_timeout_s: float = setting(
        3.0,
        meaning="How long a connection to a provider may take to open.",
        type="number",
        unit="seconds",
    )
    upstream_timeout_s: float = setting(
        15.0,
        meaning="Longest a whole provider call may take, waiting for a slot included. A provider that answers "
        "slower than this fails every call (an `add` that timed out is resent only where that is safe).",
        type="number",
        unit="seconds",
    )
    upstream_concurrency: int = setting(
        16,
        meaning="Calls in flight at once per provider and process; more wait for a slot. Lower it for a provider "
        "that rate-limits us.",
        type="integer",
        unit="calls",
    )
    upstream_breaker_failures: int = setting(
        5,
        meaning="Consecutive failed calls (no reply, 5xx, garbage) to one provider that open its circuit "
        "breaker: calls then fail at once, without waiting on the provider (metric "
        "`panelflow_upstream_circuit_state`).",
        type="integer",
        unit="calls",
    )
    upstream_breaker_reset_s: float = setting(
        30.0,
        meaning="How long an open breaker waits before it lets one trial call through; a success closes it.",
        type="number",
        unit="seconds",
    )
    upstream_allow_http: bool = setting(
        False,
        meaning="Development and tests only: allow plain-http provider URLs. Otherwise https is required, because "
        "our key at the provider travels in every call.",
        type="boolean",
    )
    upstream_allowed_networks: str = setting(
        "",
        meaning="Networks provider calls may reach although not public (e.g. a local simulator's "
        "`127.0.0.1/32`); other addresses that are not public are refused. Cloud metadata "
        "addresses stay refused whatever this says. Empty in production.",
        type="list of CIDR networks (comma-separated)",
    )
    upstream_response_max_bytes: int = setting(
        8_388_608,
        meaning="A provider reply longer than this (after decompression) is cut off and counts as garbage; raise "
        "it only for a provider whose `services` list is larger.",
        type="integer",
        unit="bytes",
    )
