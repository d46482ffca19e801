"""The outbox relay: events committed in Postgres, published to RabbitMQ."""

from __future__ import annotations

from pydantic import BaseModel

from shared.settings.field import setting


class Outbox(BaseModel):
    """Event relay (outbox)

    Every event (an order placed, a status changed) is written to the `outbox` table in the transaction that
    causes it; a relay publishes it to RabbitMQ and marks it published. Every api process runs one; a standalone
    relay process can run instead or beside them. Relays share the table safely.
    """

    relay_enabled: bool = setting(
        True,
        meaning="Whether each api process runs an outbox relay. `false` when relays run as processes of their "
        "own (`python -m services.relay`); with no relay anywhere no order reaches the worker (the outbox "
        "backlog grows, alert PanelflowOutboxLag).",
        type="boolean",
    )
    relay_batch: int = setting(
        500,
        meaning="Most outbox rows one relay claims and publishes in one transaction.",
        type="integer",
        unit="rows",
    )
    relay_poll_s: float = setting(
        1.0,
        meaning="A relay is woken by a database notification on every new row; it also looks this often in case a "
        "notification was lost.",
        type="number",
        unit="seconds",
    )
    relay_publish_timeout_s: float = setting(
        10.0,
        meaning="How long a relay waits for RabbitMQ to confirm a publish; an unconfirmed row stays unpublished "
        "and is sent again later.",
        type="number",
        unit="seconds",
    )
    outbox_retention_hours: float = setting(
        168.0,
        meaning="Published outbox rows are deleted this long after publishing (kept meanwhile to look into what "
        "was sent); unpublished rows never are. 0: relays purge nothing (rows are kept until "
        "`panelflow outbox purge --older-than HOURS`).",
        type="number",
        unit="hours",
    )
    outbox_purge_interval_s: float = setting(
        600.0,
        meaning="How often every relay deletes outbox rows past the retention (±10 %).",
        type="number",
        unit="seconds",
    )
    outbox_purge_batch: int = setting(
        5000,
        meaning="Most outbox rows deleted in one transaction of the purge (smaller keeps each transaction short).",
        type="integer",
        unit="rows",
    )
