"""All configuration of every panelflow process, read once from `PANELFLOW_*` environment variables.

Build it in `__main__` (or a test) and pass it down; nothing reads the environment anywhere else.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANELFLOW_", extra="ignore")

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
    # Trust X-Forwarded-For from these proxies only (comma-separated CIDRs); empty: use the peer address.
    trusted_proxies: str = ""
    auth_cache_ttl_s: float = 5.0
    catalog_refresh_s: float = 30.0
    # Group commit: concurrent `add` calls are coalesced into batches of at most this size.
    placement_batch_max: int = 256
    placement_concurrency: int = 4
    batch_ids_max: int = 100
    list_lines_max: int = 10_000
    refills_per_order_max: int = 3
    refills_pending_max: int = 1

    # --- outbox relay --------------------------------------------------------------------------------
    relay_enabled: bool = True
    relay_batch: int = 500
    relay_poll_s: float = 1.0

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
    # Sell rate of newly imported services when `services sync` gets no --markup (percent over cost).
    catalog_default_markup_pct: Decimal = Decimal("20")

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
    sim_balance: Decimal = Decimal("1000000")

    # --- api ingress (owned by the api helper) ----------------------------------------------------------
    # How long a request waits for a pooled database connection before answering 503.
    db_acquire_timeout_s: float = 5.0
    # Prefix of the rate-limit keys in Redis (when `redis_url` is set): separates stacks sharing one Redis.
    rate_limit_redis_prefix: str = "panelflow:ratelimit"

    def amqp_name(self, name: str) -> str:
        return f"{self.amqp_prefix}.{name}"
