"""Webhooks: signed events sent to the resellers' endpoints by the `webhooks` processes."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from shared.settings.field import setting


class WebhookPolicy(BaseModel):
    """Webhooks: endpoints, retries and retention

    What an account may register, how a failing endpoint is retried and given up on, and how long the delivery
    log is kept (docs/webhooks.md).
    """

    webhook_max_endpoints: int = setting(
        5, meaning="Webhook endpoints one account may register.", type="integer", unit="endpoints"
    )
    webhooks_allow_http: bool = setting(
        False,
        meaning="Development and tests only: allow plain-http endpoint URLs. Otherwise https is required.",
        type="boolean",
    )
    webhooks_allowed_networks: str = setting(
        "",
        meaning="Networks webhook endpoints may be in although not public (e.g. a test receiver's "
        "`127.0.0.0/8`); other addresses that are not public are refused, so a reseller cannot "
        "make us call into our own network. Cloud metadata addresses stay refused whatever this says.",
        type="list of CIDR networks (comma-separated)",
    )
    webhook_retry_schedule_s: list[float] = setting(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0],
        meaning="Pause before each retry of a failed delivery, in order; after the last the delivery fails (and "
        "can be replayed by hand). The default spans about 3 days.",
        type="JSON list of numbers",
        unit="seconds",
    )
    webhook_retry_jitter: float = setting(
        0.2,
        meaning="Each retry pause is moved randomly by up to this share of it, so that many deliveries failing "
        "together are not retried together.",
        type="number",
        unit="share (0.2 = ±20 %)",
    )
    webhook_retry_after_min_s: float = setting(
        1.0,
        meaning="A 429 or 503 answer's `Retry-After` replaces the schedule's pause, but not below this.",
        type="number",
        unit="seconds",
    )
    webhook_retry_after_max_s: float = setting(
        21600.0,
        meaning="… and not above this.",
        type="number",
        unit="seconds",
    )
    webhook_disable_after: timedelta = setting(
        timedelta(days=5),
        meaning="An endpoint failing without a single success for this long is disabled (alert "
        "PanelflowWebhookEndpointDisabled; `panelflow webhooks enable` turns it back on). An endpoint answering "
        "410 Gone is disabled at once.",
        type="ISO 8601 duration (`P5D`, `PT12H`, `P1DT6H`)",
    )
    webhook_retention_days: int = setting(
        30,
        meaning="Finished deliveries and their attempts are deleted this long after their last change, then the "
        "events no delivery needs: replay reaches back this far. Pending deliveries are never deleted. Keep "
        "it at least the retry schedule's span and `webhook_disable_after`; 0 turns the periodic purge off "
        "(`panelflow webhooks purge` still works).",
        type="integer",
        unit="days",
    )
    webhook_purge_interval_s: float = setting(
        3600.0,
        meaning="How often each webhooks process deletes what the retention lets go (±10 %).",
        type="number",
        unit="seconds",
    )
    webhook_purge_batch: int = setting(
        500,
        meaning="Most events deleted (with their deliveries) in one transaction of the purge.",
        type="integer",
        unit="events",
    )
    webhook_rotation_overlap_s: float = setting(
        86400.0,
        meaning="After a reseller rotates an endpoint's secret (`webhook.rotate`), the old secret keeps signing "
        "beside the new one for this long, so the receiver can switch without losing events.",
        type="number",
        unit="seconds",
    )


class WebhookDelivery(BaseModel):
    """Webhooks: sending

    How hard the `webhooks` processes push: timeouts, per-endpoint limits, batch sizes.
    """

    webhook_timeout_s: float = setting(
        15.0,
        meaning="Longest one delivery request may take; slower counts as a failure and is retried.",
        type="number",
        unit="seconds",
    )
    webhook_connect_timeout_s: float = setting(
        5.0, meaning="How long a connection to an endpoint may take to open.", type="number", unit="seconds"
    )
    webhook_response_max_bytes: int = setting(
        16384,
        meaning="Most of an endpoint's reply read and kept in the delivery log (the rest is ignored).",
        type="integer",
        unit="bytes",
    )
    webhook_endpoint_concurrency: int = setting(
        10,
        meaning="Requests in flight to one endpoint at once, across every webhooks process.",
        type="integer",
        unit="requests",
    )
    webhook_endpoint_rate_per_s: float = setting(
        50.0,
        meaning="Requests per second to one endpoint, across every webhooks process; 0: no limit.",
        type="number",
        unit="requests per second",
    )
    webhook_lease_s: float = setting(
        60.0,
        meaning="How long a delivery taken by one webhooks process is its own; if that process dies mid-send, "
        "another sends the delivery after this. Keep it above `webhook_timeout_s`.",
        type="number",
        unit="seconds",
    )
    webhook_max_attempts: int = setting(
        20,
        meaning="Attempts of one delivery (per replay) at most, however they end: one taken more often (its "
        "results never recorded) fails instead of being sent again. Keep it above the retry schedule's "
        "length + 1.",
        type="integer",
        unit="attempts",
    )
    webhook_poll_s: float = setting(
        0.25,
        meaning="How often a webhooks process looks for due deliveries when nothing woke it.",
        type="number",
        unit="seconds",
    )
    webhook_claim_batch: int = setting(
        200, meaning="Most deliveries taken in one round.", type="integer", unit="deliveries"
    )
    webhook_max_in_flight: int = setting(
        256,
        meaning="Requests in flight per webhooks process, all endpoints together.",
        type="integer",
        unit="requests",
    )
    webhook_ingest_batch: int = setting(
        256,
        meaning="Events turned into deliveries in one statement at most; also how many events a webhooks process "
        "takes from its queue at once.",
        type="integer",
        unit="events",
    )
    webhook_record_batch: int = setting(
        256,
        meaning="Attempt results written to the database in one round at most.",
        type="integer",
        unit="attempts",
    )
