"""Every Prometheus metric of panelflow, defined once, and the small helpers the processes record them with.

Conventions: `panelflow_` prefix, base units in the name (`_seconds`), `_total` on counters, and only bounded
labels (action, HTTP status, rate-limit layer, provider name, outcome, event type, queue) — never an order id,
a key or a URL. Label values that come from the outside (an action name, an event type) are folded into
"other" unless known, so a caller cannot grow the series set.

Gauges read from the database (`*_backlog`, parked orders, ...) are sampled by `shared.kit.sampling`
in the process that owns them; every replica reports the same value, so dashboards use `max`, not `sum`.
Every gauge says how the processes of one api (`api_processes > 1`, shared/kit/multiprocess_metrics.py) combine
into the one value its `/metrics` reports (`multiprocess_mode`): the largest of the living ones (`livemax`), or
the smallest (`livemin`: one process without its rate-limit store is enough to report it down).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from prometheus_client import Counter, Gauge, Histogram, Info

OTHER = "other"

# Latency buckets: the api answers in milliseconds; upstream and webhook calls take up to their 15 s timeouts.
_API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)

BUILD_INFO = Info("panelflow_build", "Release and process of this panelflow process")

# --- api ---------------------------------------------------------------------------------------------------------
API_REQUESTS = Counter(
    "panelflow_api_requests_total", "API v2 requests by action and HTTP status", ["action", "status"]
)
API_LATENCY = Histogram(
    "panelflow_api_request_duration_seconds", "API v2 request latency by action", ["action"], buckets=_API_BUCKETS
)
API_RATE_LIMITED = Counter(
    "panelflow_api_rate_limited_total", "Requests denied by a rate limit, by layer (ip, key, tier)", ["layer"]
)
RATE_LIMIT_STORE_UP = Gauge(
    "panelflow_ratelimit_store_up",
    "1 while the rate-limit store (Redis when PANELFLOW_REDIS_URL is set) answers, 0 while every limit is off",
    multiprocess_mode="livemin",
)
RATE_LIMIT_FAIL_OPEN = Counter(
    "panelflow_ratelimit_fail_open_total",
    "Rate-limit checks let through unchecked because the store failed, by layer (ip, key, tier)",
    ["layer"],
)
API_IDEMPOTENT_REPLAYS = Counter(
    "panelflow_api_idempotent_replays_total", "`add` calls answered with the order an earlier call created"
)
API_CONFLICTS = Counter(
    "panelflow_api_conflicts_total", "409 answers: a request_id reused with different parameters", ["action"]
)
PLACEMENT_BATCH_SIZE = Histogram(
    "panelflow_placement_batch_size",
    "Orders per placement batch (group commit, one transaction): small under light load, growing with it",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
PLACEMENT_BATCH_DURATION = Histogram(
    "panelflow_placement_batch_duration_seconds",
    "Time to place one batch (its statement and commit; and the re-runs of orders it could not settle)",
    buckets=_API_BUCKETS,
)

# --- outbox relay (runs in the api) --------------------------------------------------------------------------------
OUTBOX_BACKLOG = Gauge(
    "panelflow_outbox_backlog", "Outbox rows not yet published (sampled)", multiprocess_mode="livemax"
)
OUTBOX_OLDEST_AGE = Gauge(
    "panelflow_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest unpublished outbox row; 0 when none",
    multiprocess_mode="livemax",
)
OUTBOX_PUBLISHED = Counter("panelflow_outbox_published_total", "Outbox rows published and confirmed by the broker")
OUTBOX_PUBLISH_FAILURES = Counter(
    "panelflow_outbox_publish_failures_total", "Outbox rows whose publish failed (retried later)"
)

# --- consumers (worker and webhooks) -------------------------------------------------------------------------------
MESSAGES_CONSUMED = Counter(
    "panelflow_messages_consumed_total",
    "Messages handled by a consumer, by queue, event type and outcome (ack, nack, reject; wait: the database was "
    "away and the handler is run again in-process)",
    ["queue", "event_type", "outcome"],
)

QUEUE_MESSAGES = Gauge(
    "panelflow_queue_messages",
    "Ready messages in a consumer group's queue (sampled from the broker)",
    ["queue"],
    multiprocess_mode="livemax",
)
DLQ_MESSAGES = Gauge(
    "panelflow_dlq_messages",
    "Messages in a consumer group's dead-letter queue (sampled from the broker)",
    ["queue"],
    multiprocess_mode="livemax",
)

# --- worker -------------------------------------------------------------------------------------------------------
SUBMISSIONS = Counter(
    "panelflow_worker_submissions_total",
    "Upstream `add` outcomes of orders (accepted, refused, retried, parked; requeued: a stopped worker's claim back "
    "to pending)",
    ["outcome"],
)
UPSTREAM_LATENCY = Histogram(
    "panelflow_upstream_request_duration_seconds",
    "Upstream API v2 call latency by provider and action",
    ["provider", "action"],
    buckets=_CALL_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "panelflow_upstream_errors_total",
    "Upstream calls that failed, by provider, action and kind of failure",
    ["provider", "action", "kind"],
)
UPSTREAM_CIRCUIT = Gauge(
    "panelflow_upstream_circuit_state",
    "Circuit breaker of each provider: 1 for its current state (closed, open, half_open), 0 for the others",
    ["provider", "state"],
    multiprocess_mode="livemax",
)
PARKED_ORDERS = Gauge(
    "panelflow_parked_orders", "Orders parked with an unknown upstream outcome (sampled)", multiprocess_mode="livemax"
)
POLLS_DUE = Gauge(
    "panelflow_orders_due_for_polling",
    "In-flight orders whose status check is due now (sampled)",
    multiprocess_mode="livemax",
)
STATUS_CALL_IDS = Histogram(
    "panelflow_worker_status_call_ids",
    "Order ids per upstream `status` call (average = sum / count)",
    buckets=(1, 5, 10, 25, 50, 75, 100),
)
REFUNDS = Counter("panelflow_worker_refunds_total", "Refunds paid (Partial, Canceled, refused, resolved)")

# --- webhooks -----------------------------------------------------------------------------------------------------
WEBHOOK_DELIVERIES = Counter(
    "panelflow_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (succeeded, retry, failed, gone, error, capped)",
    ["outcome"],
)
WEBHOOK_LATENCY = Histogram(
    "panelflow_webhook_delivery_duration_seconds", "Webhook delivery attempt latency", buckets=_CALL_BUCKETS
)
WEBHOOK_BACKLOG = Gauge(
    "panelflow_webhook_backlog", "Webhook deliveries due now and not leased (sampled)", multiprocess_mode="livemax"
)
WEBHOOK_OLDEST_DUE_AGE = Gauge(
    "panelflow_webhook_oldest_due_age_seconds",
    "How long the most overdue pending delivery has waited (sampled)",
    multiprocess_mode="livemax",
)
WEBHOOK_ENDPOINTS_DISABLED = Gauge(
    "panelflow_webhook_endpoints_disabled", "Disabled webhook endpoints (sampled)", multiprocess_mode="livemax"
)


# --- every process ------------------------------------------------------------------------------------------------
SCHEMA_MIGRATIONS_PENDING = Gauge(
    "panelflow_schema_migrations_pending",
    "Migrations this process's code expects that its database lacks (checked by /readyz; > 0: not ready)",
    multiprocess_mode="livemax",
)
LOOP_RESTARTS = Counter(
    "panelflow_loop_restarts_total",
    "Background loops restarted by the supervisor after an unexpected exception or exit, by loop name",
    ["loop"],
)


def set_build_info(process: str, release: str) -> None:
    BUILD_INFO.info({"process": process, "release": release})


def event_type_label(event_type: str | None, known: Collection[str]) -> str:
    return event_type if event_type is not None and event_type in known else OTHER


def action_label(action: str | None, known: Collection[str]) -> str:
    if not action:
        return "none"
    return action if action in known else OTHER


def set_breaker_state(provider: str, state: str, states: Iterable[str]) -> None:
    """`state` is the breaker's current state, `states` all it can be in (each gets its own 0/1 series)."""
    for name in states:
        UPSTREAM_CIRCUIT.labels(provider=provider, state=name).set(1 if name == state else 0)
