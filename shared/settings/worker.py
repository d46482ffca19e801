"""The order worker: submits orders upstream, follows them, refunds, refills, cancels."""

from __future__ import annotations

from pydantic import BaseModel

from shared.settings.field import setting


class Worker(BaseModel):
    """Order worker

    Run as many worker processes as the load needs; they share the work through the database and the queue.
    """

    worker_submit_batch_max: int = setting(
        100,
        meaning="New orders a worker submits together: one claim transaction, concurrent upstream calls, one "
        "result transaction.",
        type="integer",
        unit="orders",
    )
    worker_submit_linger_s: float = setting(
        0.005,
        meaning="How long a submission batch waits for more orders before it goes; longer batches more under "
        "load at the cost of that much latency per order.",
        type="number",
        unit="seconds",
    )
    worker_submit_grace_s: float = setting(
        30.0,
        meaning="A pending order whose message has not arrived after this long (lost, or the relay is behind) is "
        "submitted by the worker's sweep instead.",
        type="number",
        unit="seconds",
    )
    worker_submitting_timeout_s: float = setting(
        120.0,
        meaning="An order stuck in submission this long belongs to a worker that stopped: it is sent again when "
        "that is safe (its request never started, or the provider honours `request_id`), otherwise parked "
        "for a person (`panelflow orders parked`). Keep it above `upstream_timeout_s` plus the wait for a "
        "slot, or live calls are taken over. Also how long a worker keeps trying to record upstream answers "
        "while the database is down.",
        type="number",
        unit="seconds",
    )
    worker_retry_base_s: float = setting(
        10.0,
        meaning="First pause before a submission is retried after the provider was unreachable or out of funds; "
        "it doubles per retry up to `worker_retry_max_s`.",
        type="number",
        unit="seconds",
    )
    worker_retry_max_s: float = setting(
        900.0,
        meaning="Longest pause between submission retries.",
        type="number",
        unit="seconds",
    )
    worker_poll_claim: int = setting(
        1000,
        meaning="Orders a worker takes per status-polling round (asked upstream in calls of `batch_ids_max` ids "
        "per provider).",
        type="integer",
        unit="orders",
    )
    worker_poll_lease_s: float = setting(
        60.0,
        meaning="How long a claimed status check belongs to one worker; a worker that dies leaves its claims to "
        "others after this.",
        type="number",
        unit="seconds",
    )
    worker_poll_min_s: float = setting(
        5.0,
        meaning="Shortest pause between two status checks of one order.",
        type="number",
        unit="seconds",
    )
    worker_poll_max_s: float = setting(
        1800.0,
        meaning="Longest pause between two status checks of one order, however old: the most a finished order "
        "can stay unreported (and its refund unpaid).",
        type="number",
        unit="seconds",
    )
    worker_poll_age_factor: float = setting(
        0.1,
        meaning="The pause between status checks is this share of the order's age (within the min and max): with "
        "0.1 an order 10 minutes old is checked once a minute. Lower polls the providers more.",
        type="number",
        unit="share of the order's age",
    )
    worker_poll_idle_s: float = setting(
        0.5,
        meaning="How long the status poller rests when no order is due.",
        type="number",
        unit="seconds",
    )
    worker_poll_concurrency: int = setting(
        8,
        meaning="Upstream status calls in flight at once per worker, all providers together.",
        type="integer",
        unit="calls",
    )
    worker_sweep_s: float = setting(
        5.0,
        meaning="How often a worker sweeps for work no message brought: stuck submissions, due retries, refills "
        "and cancels not yet forwarded.",
        type="number",
        unit="seconds",
    )
    worker_drain_s: float = setting(
        20.0,
        meaning="On SIGTERM a worker stops taking work and finishes what is in flight for at most this long. Keep "
        "it under the orchestrator's grace period (Kubernetes: `terminationGracePeriodSeconds`).",
        type="number",
        unit="seconds",
    )
