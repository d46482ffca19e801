"""Logs, error reporting, metrics and health endpoints."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr

from shared.settings.field import setting


class Observability(BaseModel):
    """Logs, error reporting, metrics and health

    Every process serves `/metrics`, `/healthz` and `/readyz` on an operations port of its own, never on the
    api's public port (docs/operations.md).
    """

    log_level: str = setting(
        "INFO",
        meaning="Least severe log lines written: `DEBUG`, `INFO`, `WARNING` or `ERROR` (an unknown name means `INFO`).",
        type="log level name",
    )
    log_format: str = setting(
        "auto",
        meaning="`json`: one JSON object per line (for a log pipeline); `console`: coloured text for people; "
        "`auto`: console on a terminal, JSON otherwise.",
        type="`auto`, `json` or `console`",
    )
    sentry_dsn: SecretStr | None = setting(
        None,
        meaning="Sentry project to report errors to (keys and secrets are scrubbed from reports); empty: no reporting.",
        type="URL (secret)",
    )
    sentry_environment: str = setting(
        "development",
        meaning="Environment name Sentry files the reports under (`production`, `staging`, …).",
        type="text",
    )
    release: str = setting(
        "panelflow@0.1.0",
        meaning="Release name reported to Sentry and in the `panelflow_build_info` metric: set it to the "
        "deployed version to tell releases apart.",
        type="text",
    )
    metrics_host: str = setting(
        "127.0.0.1",
        meaning="Address the operations servers (`/metrics`, `/healthz`, `/readyz`) listen on: `0.0.0.0` in "
        "containers, or Prometheus and the orchestrator's probes cannot reach them.",
        type="IP address or host name",
    )
    metrics_port_api: int = setting(
        9100, meaning="Operations port of the api; 0 turns its operations server off.", type="port"
    )
    metrics_port_worker: int = setting(
        9101, meaning="Operations port of a worker; 0 turns its operations server off.", type="port"
    )
    metrics_port_webhooks: int = setting(
        9102, meaning="Operations port of a webhooks process; 0 turns its operations server off.", type="port"
    )
    metrics_port_sim: int = setting(
        9103, meaning="Operations port of the provider simulator; 0 turns its operations server off.", type="port"
    )
    metrics_port_relay: int = setting(
        9104, meaning="Operations port of a standalone relay; 0 turns its operations server off.", type="port"
    )
    metrics_sample_s: float = setting(
        10.0,
        meaning="How often the gauges read from the database (outbox and webhook backlogs, parked orders, due "
        "status checks) and the queue depths are refreshed.",
        type="number",
        unit="seconds",
    )
    gc_threshold: int = setting(
        50_000,
        meaning="Young-generation threshold of Python's cyclic garbage collector in every process (Python's "
        "default: 700); the objects of start-up are frozen out of its reach once the process has started. "
        "Fewer collections cost less CPU under load and keep unreachable cycles in memory longer (watch RSS); "
        "0 leaves the collector at Python's defaults.",
        type="integer",
        ge=0,
    )
    loop_stall_s: float = setting(
        60.0,
        meaning="A background loop (placement, relay, status polling, deliveries, …) that completed no round for "
        "this long, or for three of its periods if that is longer, makes `/readyz` fail naming the loop, so "
        "the process is taken out of service instead of looking healthy while doing nothing.",
        type="number",
        unit="seconds",
    )
