"""Message broker (RabbitMQ)."""

from __future__ import annotations

from pydantic import BaseModel

from shared.settings.field import setting


class Broker(BaseModel):
    """Message broker (RabbitMQ)

    RabbitMQ carries order and webhook events between the processes; Postgres keeps what they mean, so RabbitMQ
    needs no backup (docs/operations.md, "Back up and restore").
    """

    amqp_url: str = setting(
        "amqp://guest:guest@127.0.0.1:5672/",
        meaning="The RabbitMQ server (and virtual host) every process publishes to and consumes from.",
        type="URL (`amqp://user:password@host:port/vhost`)",
    )
    amqp_prefix: str = setting(
        "panelflow",
        meaning="Every exchange and queue name starts with this: two stacks sharing one RabbitMQ (or virtual "
        "host) need different prefixes, or each takes the other's messages. Every process of one stack must "
        "use the same.",
        type="text",
    )
    amqp_delivery_limit: int = setting(
        5,
        meaning="Times a message is handed to a consumer before it goes to the dead-letter queue "
        "(`panelflow dlq list`). A queue keeps the limit it was created with, and a process set to another "
        "value cannot declare it (`PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit'`): to change it, "
        "stop every process, delete the drained queues `<prefix>.worker.orders` and `<prefix>.webhooks.events`, "
        "and start them again.",
        type="integer",
        unit="deliveries",
    )
    amqp_prefetch: int = setting(
        64,
        meaning="Messages a worker or webhooks process takes from its queue at once (unacknowledged); also how "
        "many of its handlers run concurrently. Higher batches more per database round trip; lower spreads "
        "messages more evenly over many replicas.",
        type="integer",
        unit="messages",
    )
    amqp_reconnect_max_s: float = setting(
        5.0,
        meaning="Longest pause between attempts to reconnect to RabbitMQ (starting at 0.1 s, doubling, "
        "jittered) for publishers and consumers.",
        type="number",
        unit="seconds",
    )
    consumer_stop_timeout_s: float = setting(
        30.0,
        meaning="On SIGTERM, how long handlers in flight get to finish before the connection closes (their "
        "messages are then redelivered to another process). Keep it under the orchestrator's grace period.",
        type="number",
        unit="seconds",
    )
    consumer_retry_base_s: float = setting(
        0.1,
        meaning="A message whose handler failed is held this long before it is requeued (doubling per delivery, "
        "capped by `consumer_retry_max_s`), so it does not reach the delivery limit within milliseconds. "
        "While the database is down a handler is instead retried in-process at the same pauses, using none "
        "of the delivery limit.",
        type="number",
        unit="seconds",
    )
    consumer_retry_max_s: float = setting(
        2.0,
        meaning="Longest pause before a failed message is requeued, and between in-process retries while the "
        "database is down.",
        type="number",
        unit="seconds",
    )
