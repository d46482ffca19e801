"""The public API (the `api` process)."""

from __future__ import annotations

from pydantic import BaseModel

from shared.settings.field import setting


class Api(BaseModel):
    """Public API

    Where the api listens, what it accepts, and the sizes of its caches and batches.
    """

    api_host: str = setting(
        "127.0.0.1",
        meaning="Address the api listens on: `0.0.0.0` in a container or behind a load balancer; the default "
        "answers only on the machine itself.",
        type="IP address or host name",
    )
    api_port: int = setting(8080, meaning="Port of the public API (`/api/v2`, `/healthz`, `/readyz`).", type="port")
    api_processes: int = setting(
        1,
        meaning="Api processes started by one `python -m services.api`, sharing `api_port` (SO_REUSEPORT), each "
        "with its own pool, placer and outbox relay: use it to fill the cores of one machine. 1 runs a single "
        "process; on Kubernetes scale replicas instead. They share `metrics_port_api` too, and `/metrics` answers "
        "for all of them, counts summed (a temporary directory must be writable: docs/operations.md).",
        type="integer",
        unit="processes",
    )
    max_body_bytes: int = setting(
        1_048_576,
        meaning="Largest request body the api reads; a bigger one is answered 413 (`Request body too large`). "
        "It bounds the longest list an order can carry (comments, usernames).",
        type="integer",
        unit="bytes",
    )
    trusted_proxies: str = setting(
        "",
        meaning="Your load balancer's or ingress controller's addresses, nothing wider: `X-Forwarded-For` is "
        "believed from them only and the client is its right-most address that is not one of them. Empty: "
        "the header is ignored and the TCP peer is the client (behind a proxy, every caller then shares the "
        "proxy's ip rate limit).",
        type="list of CIDR networks (comma-separated)",
    )
    auth_cache_ttl_s: float = setting(
        5.0,
        meaning="How long an api process trusts a cached API key record. Revocations and suspensions reach every "
        "process at once by database notification; this bounds the delay when a notification is lost.",
        type="number",
        unit="seconds",
    )
    auth_cache_max_entries: int = setting(
        100_000,
        meaning="API key records (known and unknown keys) cached per api process; the least recently used go "
        "first when it is full.",
        type="integer",
        unit="entries",
    )
    key_last_use_flush_s: float = setting(
        60.0,
        meaning="How often an api process writes the last use of the API keys it accepted since its previous write "
        "(`panelflow key list|show`), all in one statement, and once more when it stops; never once per request. "
        "The shown last use is the request's own time, written up to this long after it; an api killed without a "
        "clean stop loses at most this long of uses. Shorter: fresher, one more small write per interval.",
        type="number",
        unit="seconds",
        gt=0,
    )
    catalog_refresh_s: float = setting(
        30.0,
        meaning="How often each api process reloads the catalog of services (prices, limits) even without a "
        "change notification: the most a lost notification can leave a stale price in place.",
        type="number",
        unit="seconds",
    )
    placement_batch_max: int = setting(
        256,
        meaning="Most `add` calls written to the database in one statement (group commit). Larger batches raise "
        "throughput under load and the latency of each batch.",
        type="integer",
        unit="orders",
    )
    placement_concurrency: int = setting(
        4,
        meaning="Placement batches in flight at once per api process; each holds a pooled connection, so keep it "
        "well under `db_pool_max`.",
        type="integer",
        unit="batches",
    )
    batch_ids_max: int = setting(
        100,
        meaning="Most order ids one `status`, `refill` or `cancel` call may name (more are refused), and most ids "
        "the worker puts in one upstream `status` call.",
        type="integer",
        unit="ids",
    )
    list_lines_max: int = setting(
        10_000,
        meaning="Most lines (usernames, comments, …) one order of a list-type service may carry; longer lists "
        "are refused.",
        type="integer",
        unit="lines",
    )
    refills_per_order_max: int = setting(
        3,
        meaning="Refills that may ever be requested for one order; more are refused.",
        type="integer",
        unit="refills",
    )
    refills_pending_max: int = setting(
        1,
        meaning="Refills of one order that may be open at once; another is refused until one finishes.",
        type="integer",
        unit="refills",
    )
