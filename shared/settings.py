"""All configuration of every panelflow process, read once from `PANELFLOW_*` environment variables.

Build it in `__main__` (or a test) and pass it down; nothing reads the environment anywhere else.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # Environment variables win over a `.env` file in the working directory (read when present), which wins over
    # the defaults below.
    model_config = SettingsConfigDict(
        env_prefix="PANELFLOW_", extra="ignore", env_file=".env", env_file_encoding="utf-8"
    )

    # --- mode --------------------------------------------------------------------------------------------
    # `production` (the default): a process or command that needs an encryption key (PANELFLOW_WEBHOOK_SECRET_KEY,
    # PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY) refuses to start while it is empty. `development` (what `make run`,
    # `make up`, `make test` and the test suite set) uses fixed development keys instead, with a warning.
    env: Literal["development", "production"] = "production"

    # --- connections -------------------------------------------------------------------------------
    database_url: str = "postgresql://postgres@127.0.0.1:5432/panelflow"
    db_pool_min: int = 2
    db_pool_max: int = 10
    # PgBouncer in transaction pooling mode needs 0 (prepared statements do not survive it).
    db_statement_cache_size: int = 100
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Every exchange and queue name starts with this prefix: tests and parallel stacks isolate by it.
    amqp_prefix: str = "panelflow"
    amqp_delivery_limit: int = 5
    amqp_prefetch: int = 64
    # Empty: rate limits are kept in-process (one api replica). Set it when running several replicas.
    redis_url: str = ""

    # --- api -----------------------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    max_body_bytes: int = 1_048_576
    currency: str = "USD"
    # Rate limits per minute; 0 lifts a layer. The per-key default applies to keys created without one.
    rate_limit_ip_per_min: int = 300
    rate_limit_key_default_per_min: int = 600
    rate_limit_tier_per_min: dict[str, int] = Field(
        default_factory=lambda: {"standard": 1200, "reseller": 6000, "enterprise": 30000}
    )
    rate_limits_enabled: bool = True
    # IPv6 callers share one ip-layer budget per network of this many bits (a subscriber usually holds a /64).
    rate_limit_ipv6_prefix: int = Field(default=64, ge=1, le=128)
    # The addresses of the proxies in front of the api that append to X-Forwarded-For (comma-separated CIDRs):
    # your load balancer's or ingress controller's, nothing wider. The client is the right-most address of the
    # header that is not one of them. Empty: the header is ignored and the TCP peer is the client.
    trusted_proxies: str = ""
    auth_cache_ttl_s: float = 5.0
    # Key records (and unknown keys) cached per api process; the least recently used go first when it is full.
    auth_cache_max_entries: int = 100_000
    catalog_refresh_s: float = 30.0
    # Group commit: concurrent `add` calls are coalesced into batches of at most this size.
    placement_batch_max: int = 256
    placement_concurrency: int = 4
    batch_ids_max: int = 100
    list_lines_max: int = 10_000
    refills_per_order_max: int = 3
    refills_pending_max: int = 1

    # --- outbox relay --------------------------------------------------------------------------------
    # false: the api runs no relay of its own (run `python -m services.relay` beside it instead).
    relay_enabled: bool = True
    relay_batch: int = 500
    relay_poll_s: float = 1.0
    # Published outbox rows are deleted this many hours after they were published (kept meanwhile to look into
    # what was sent); unpublished rows never. Every relay purges every outbox_purge_interval_s (±10 %), in
    # transactions of at most outbox_purge_batch rows; 0 turns the periodic purge off.
    outbox_retention_hours: float = 168.0
    outbox_purge_interval_s: float = 600.0
    outbox_purge_batch: int = 5000

    # --- observability -------------------------------------------------------------------------------
    log_level: str = "INFO"
    # "auto": console renderer on a terminal, JSON otherwise.
    log_format: str = "auto"
    sentry_dsn: SecretStr | None = None
    sentry_environment: str = "development"
    release: str = "panelflow@0.1.0"

    # --- accounts ------------------------------------------------------------------------------------
    low_balance_threshold: Decimal = Decimal("5")

    # --- test-only fault injection (see shared/failpoints.py); empty in production ----------------------
    failpoints: str = ""

    # --- upstream client (H5: shared/upstream) ----------------------------------------------------------
    # Far below aiohttp's 300 s default: a hung provider must not hold a worker's slot for minutes.
    upstream_connect_timeout_s: float = 3.0
    upstream_timeout_s: float = 15.0
    # Requests in flight at once per provider; more wait for a slot (the wait counts against the timeout).
    upstream_concurrency: int = 16
    # Consecutive transport failures (no reply, 5xx, garbage) that open the breaker, and how long it stays open
    # before one probe call is let through.
    upstream_breaker_failures: int = 5
    upstream_breaker_reset_s: float = 30.0
    # Plain-http provider URLs (development and tests only); https otherwise: our key at the provider is in every call.
    upstream_allow_http: bool = False
    # CIDRs (comma-separated) upstream calls may reach although not public, e.g. a local provider simulator's
    # 127.0.0.1/32. Empty in production. Cloud metadata addresses stay refused whatever this says.
    upstream_allowed_networks: str = ""
    # A provider reply longer than this (after decompression) is cut off and counts as garbage.
    upstream_response_max_bytes: int = 8_388_608
    # Sell rate of newly imported services when `services sync` gets no --markup (percent over cost).
    catalog_default_markup_pct: Decimal = Decimal("20")
    # Fernet key(s) that encrypt our API keys at the providers at rest (`providers.api_key_enc`), comma-separated:
    # the first encrypts, all decrypt; `panelflow provider encrypt-keys` re-encrypts under the first (rotation).
    # Needed by the worker, `panelflow migrate` and the provider commands: required unless PANELFLOW_ENV is
    # development, where an unset key means a fixed development key (with a warning).
    provider_key_encryption_key: SecretStr | None = None

    # --- provider simulator (H5: services/provider_sim) -------------------------------------------------
    sim_host: str = "127.0.0.1"
    sim_port: int = 8090
    sim_key: str = "sim-key"
    # An order is Pending for `sim_pending_s`, then In progress until `sim_completion_s`, then terminal.
    sim_pending_s: float = 1.0
    sim_completion_s: float = 10.0
    # Instant mode: every order is terminal as soon as it is created (benchmarks).
    sim_instant: bool = False
    # Weights of the terminal outcome of orders whose link carries no `sim=` marker.
    sim_outcome_mix: dict[str, float] = Field(default_factory=lambda: {"completed": 1.0})
    # Seed of the simulator's random choices (outcome mix, fault rates); equal seeds give equal runs.
    sim_seed: int = 0
    # Whether the simulator honours `request_id` on `add` (a repeated id answers the order it created, as an
    # idempotent panel does) or, when false, creates a new order for every `add` (as many panels do).
    sim_idempotent: bool = True
    sim_balance: Decimal = Decimal("1000000")

    # --- api ingress (owned by the api helper) ----------------------------------------------------------
    # How long a request waits for a pooled database connection before answering 503.
    db_acquire_timeout_s: float = 5.0
    # Prefix of the rate-limit keys in Redis (when `redis_url` is set): separates stacks sharing one Redis.
    rate_limit_redis_prefix: str = "panelflow:ratelimit"

    # --- webhooks (H6: shared/webhooks, services/webhooks) ----------------------------------------------
    # Fernet key(s) that encrypt endpoint secrets at rest, comma-separated: the first encrypts, all decrypt
    # (key rotation). Needed by the api and the webhooks processes: required unless PANELFLOW_ENV is development,
    # where an unset key means a fixed development key (with a warning).
    webhook_secret_key: SecretStr | None = None
    # Plain-http endpoint URLs (development and tests only); https otherwise.
    webhooks_allow_http: bool = False
    # CIDRs (comma-separated) the SSRF guard lets through although not public, e.g. a test receiver's
    # 127.0.0.0/8. Empty in production. Cloud metadata addresses stay refused whatever this says.
    webhooks_allowed_networks: str = ""
    webhook_max_endpoints: int = 5
    # Delay before each retry after a failed attempt; the delivery fails after the last one.
    webhook_retry_schedule_s: list[float] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0]
    )
    webhook_retry_jitter: float = 0.2
    # Retry-After of a 429/503 is honoured within these bounds.
    webhook_retry_after_min_s: float = 1.0
    webhook_retry_after_max_s: float = 21600.0
    # An endpoint failing without a single success for this long is disabled.
    webhook_disable_after: timedelta = timedelta(days=5)
    # Finished deliveries (succeeded, failed, skipped) with their attempts are purged this many days after their
    # last change, then the events no delivery refers to any more: replay reaches back this far. Pending
    # deliveries are never purged. At least the retry schedule's span and webhook_disable_after (5 days); 0 turns
    # the webhooks processes' periodic purge off (`panelflow webhooks purge` still works).
    webhook_retention_days: int = 30
    # Each webhooks process purges this often (±10 %), in transactions of at most webhook_purge_batch events.
    webhook_purge_interval_s: float = 3600.0
    webhook_purge_batch: int = 500
    # After `webhook.rotate`, the previous secret keeps signing beside the new one for this long.
    webhook_rotation_overlap_s: float = 86400.0
    webhook_timeout_s: float = 15.0
    webhook_connect_timeout_s: float = 5.0
    webhook_response_max_bytes: int = 16384
    # Per endpoint, enforced across every dispatcher: requests in flight, and requests per second (0: no limit).
    webhook_endpoint_concurrency: int = 10
    webhook_endpoint_rate_per_s: float = 50.0
    # A claimed delivery is leased this long; a dispatcher killed mid-send loses it and another retries.
    webhook_lease_s: float = 60.0
    # Attempts of one delivery per run (a replay starts a new run) at most, however they end: a delivery leased
    # more often (its results never recorded) fails instead of being sent again. Above the retry schedule's
    # length + 1, or deliveries fail before the schedule ends.
    webhook_max_attempts: int = 20
    webhook_poll_s: float = 0.25
    webhook_claim_batch: int = 200
    # Requests in flight per dispatcher process, all endpoints together.
    webhook_max_in_flight: int = 256
    # Events fanned out into deliveries in one statement at most; also the `webhooks.events` consumer's prefetch.
    webhook_ingest_batch: int = 256
    # Attempt results written in one round at most (the attempts that ended while the last round was written).
    webhook_record_batch: int = 256

    # --- worker (H7: shared/worker, services/worker) ----------------------------------------------------
    # `order.placed` messages handled together: one claim transaction, concurrent upstream calls, one result
    # transaction per batch. The batch closes when full or after the linger.
    worker_submit_batch_max: int = 100
    worker_submit_linger_s: float = 0.005
    # A pending order with no message after this long (lost, or the relay is behind) is submitted by the sweeper.
    worker_submit_grace_s: float = 30.0
    # A 'submitting' row older than this belongs to a stopped worker: back to pending when its request never
    # started or the provider honours request_id, else parked ('unknown'). Must exceed the upstream client's
    # worst case (slot wait + timeout) so a live call is never taken from under its feet. Also how long a worker
    # keeps retrying to record upstream answers while the database is unavailable.
    worker_submitting_timeout_s: float = 120.0
    # Submission retries (upstream out of funds / unreachable): exponential from base up to max.
    worker_retry_base_s: float = 10.0
    worker_retry_max_s: float = 900.0
    # Status polling: orders claimed per round (split per provider into calls of `batch_ids_max`), the lease
    # a claim holds, backoff growing with the order's age, and the pause when nothing is due.
    worker_poll_claim: int = 1000
    worker_poll_lease_s: float = 60.0
    worker_poll_min_s: float = 5.0
    worker_poll_max_s: float = 1800.0
    worker_poll_age_factor: float = 0.1
    worker_poll_idle_s: float = 0.5
    # Status calls in flight at once per worker (all providers together).
    worker_poll_concurrency: int = 8
    # Sweeps: stale 'submitting' → parked, due pending retries, refills, cancels not yet forwarded.
    worker_sweep_s: float = 5.0
    # SIGTERM: stop taking work, finish what is in flight for at most this long, exit.
    worker_drain_s: float = 20.0

    # --- messaging (H3: shared/messaging — relay, consumer, DLQ) ---------------------------------------
    # A publish whose confirm has not arrived by then counts as failed (the row is retried).
    relay_publish_timeout_s: float = 10.0
    # Reconnection backoff of the relay and the consumers: exponential from 0.1 s up to this, with jitter.
    amqp_reconnect_max_s: float = 5.0
    # Graceful stop of a consumer: in-flight handlers get this long to finish before the connection closes.
    consumer_stop_timeout_s: float = 30.0
    # A failed handler's message is held this long before it is requeued (doubling per delivery, capped), so a
    # failing message does not burn through the delivery limit into the DLQ in milliseconds. A handler that
    # failed because the database is away is not requeued: it is run again in-process at the same growing
    # pauses until the database answers, however long that takes, and uses up none of the delivery limit.
    consumer_retry_base_s: float = 0.1
    consumer_retry_max_s: float = 2.0

    # --- operations (H8: shared/observability) ---------------------------------------------------------------
    # Every process serves /metrics, /healthz and /readyz on a port of its own, never on the api's public port
    # (which keeps /healthz and /readyz only). 0 turns that server off; 0.0.0.0 in containers.
    metrics_host: str = "127.0.0.1"
    metrics_port_api: int = 9100
    metrics_port_worker: int = 9101
    metrics_port_webhooks: int = 9102
    metrics_port_sim: int = 9103
    metrics_port_relay: int = 9104
    # Gauges read from the database (outbox and webhook backlogs, parked orders, due polls) are refreshed this often.
    metrics_sample_s: float = 10.0
    # A background loop (claim, poll, relay, listener, ...) that completed no round for this long, or for three
    # of its periods if that is longer, makes /readyz fail naming the loop (see shared/kit/supervisor.py).
    loop_stall_s: float = 60.0

    # --- local demo (set-up helper: shared/demo.py, shared/cli/stack.py) ---------------------------------
    # Port of the demo's webhook receiver (`make run` starts it on 127.0.0.1 and registers it for the demo account).
    demo_webhook_port: int = 8099

    # --- api processes (performance) -----------------------------------------------------------------------
    # Opt-in: this many api processes share api_port (SO_REUSEPORT), each with its own placer and outbox relay
    # (relays share the outbox with SKIP LOCKED). 1: the single process. /metrics then answers per process.
    api_processes: int = 1

    def amqp_name(self, name: str) -> str:
        return f"{self.amqp_prefix}.{name}"
