"""structlog set-up shared by every process: JSON lines in production, a readable console on a terminal.

Context (request id, order id, correlation id) is bound with `structlog.contextvars` at the edges.
"""

from __future__ import annotations

import contextvars
import logging
import sys

import structlog

from shared.settings import Settings

# Never let these reach a log line, whatever a caller binds.
SECRET_FIELDS = frozenset({"key", "api_key", "secret", "password", "token", "authorization", "x-api-key"})


# Bound by a consumer for the message it handles (and by the dispatcher for a delivery): work done for many
# messages at once (a batch, a flush of acks) runs in a task without them.
MESSAGE_CONTEXT = ("correlation_id", "event_id", "event_type", "delivery_id", "endpoint_id")


def context_without_message() -> contextvars.Context:
    """A copy of the current context without the message's log fields, for a task that serves many messages."""
    context = contextvars.copy_context()
    context.run(structlog.contextvars.unbind_contextvars, *MESSAGE_CONTEXT)
    return context


def _drop_secrets(_: object, __: str, event_dict: structlog.typing.EventDict) -> structlog.typing.EventDict:
    for name in list(event_dict):
        if name.lower() in SECRET_FIELDS:
            event_dict[name] = "[redacted]"
    return event_dict


def configure_logging(settings: Settings, process: str) -> None:
    as_json = settings.log_format == "json" or (settings.log_format == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # One write per line (message and newline together): processes sharing a stream never interleave
        # half lines, unbuffered (PYTHONUNBUFFERED) or not.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(process=process)
    # Libraries log through the standard library: keep their warnings, in the same stream.
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr, format="%(name)s %(message)s")
