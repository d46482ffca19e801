"""The provider simulator, the local demo and fault injection: development, tests and benchmarks only."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel

from shared.settings.field import setting


class Simulator(BaseModel):
    """Provider simulator (development, demos, tests, benchmarks)

    `python -m services.provider_sim` is a real API v2 upstream to buy from without a real provider; nothing in
    production runs it.
    """

    sim_host: str = setting(
        "127.0.0.1",
        meaning="Address the simulator listens on (and the demo's provider URL).",
        type="IP address or host name",
    )
    sim_port: int = setting(8090, meaning="Port the simulator listens on.", type="port")
    sim_key: str = setting(
        "sim-key", meaning="The API key the simulator accepts (and the demo provider is created with).", type="text"
    )
    sim_pending_s: float = setting(
        1.0, meaning="How long a simulated order stays Pending before In progress.", type="number", unit="seconds"
    )
    sim_completion_s: float = setting(
        10.0,
        meaning="When a simulated order reaches its outcome, counted from its creation.",
        type="number",
        unit="seconds",
    )
    sim_instant: bool = setting(
        False,
        meaning="Every simulated order has its outcome as soon as it is created (benchmarks).",
        type="boolean",
    )
    sim_outcome_mix: dict[str, float] = setting(
        default_factory=lambda: {"completed": 1.0},
        meaning="Weights of the outcomes of orders whose link carries no `sim=` marker (e.g. "
        '`{"completed": 0.9, "partial": 0.1}`; outcomes: completed, partial, canceled, stuck).',
        type="JSON object (outcome: weight)",
    )
    sim_seed: int = setting(
        0,
        meaning="Seed of the simulator's random choices (outcome mix, fault rates): equal seeds give equal runs.",
        type="integer",
    )
    sim_idempotent: bool = setting(
        True,
        meaning="`true`: a repeated `request_id` on `add` answers the order it created, as an idempotent panel "
        "does; `false`: every `add` creates a new order, as many panels do.",
        type="boolean",
    )
    sim_balance: Decimal = setting(
        Decimal("1000000"),
        meaning="The balance the simulator starts with (its `balance` answer); orders it cannot pay for are "
        "refused as a real panel out of funds would.",
        type="decimal",
        unit="the simulator's currency",
    )


class LocalDemo(BaseModel):
    """Local demo and fault injection (development and tests)"""

    demo_webhook_port: int = setting(
        8099,
        meaning="Port of the demo's webhook receiver: `make run` starts it on 127.0.0.1 and `panelflow demo seed` "
        "registers it for the demo account.",
        type="port",
    )
    demo_webhook_host: str = setting(
        "127.0.0.1",
        meaning="Host of the demo's webhook receiver in the URL `panelflow demo seed` registers: `make run` runs the "
        "receiver on 127.0.0.1; the compose stack as a service of its own (`demo-receiver`), reached by that name. "
        "A host that is not 127.0.0.1 must be in `PANELFLOW_WEBHOOKS_ALLOWED_NETWORKS` (the seed checks it).",
        type="host name or IP address",
    )
    failpoints: str = setting(
        "",
        meaning="Tests only: named points where a process kills itself (`relay.after_publish=kill`), to prove "
        "that a crash there loses nothing. Empty in production.",
        type="comma-separated `point=action` list",
    )
