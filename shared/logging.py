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


def _add_logger_name(logger: object, _: str, event_dict: structlog.typing.EventDict) -> structlog.typing.EventDict:
    record = event_dict.get("_record")
    name = record.name if record is not None else getattr(logger, "name", None)
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's one-write-per-line logger, carrying the name it was asked for (`get_logger(__name__)`)."""

    def __init__(self, name: str) -> None:
        super().__init__(sys.stderr)
        self.name = name


def _named_logger(*args: object) -> _NamedWriteLogger:
    return _NamedWriteLogger(str(args[0]) if args else "panelflow")


def configure_logging(settings: Settings, process: str) -> None:
    """Route structlog's lines and every library's (`logging`) through the same processors and renderer.

    In JSON mode every line on stderr is one JSON object with `event`, `level`, `logger`, `timestamp`, the
    process name and the correlation id bound where one is (library lines written while handling a message
    carry it too); exceptions are rendered into the `exception` field, never as loose traceback lines.
    """
    as_json = settings.log_format == "json" or (settings.log_format == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
        structlog.processors.StackInfoRenderer(),
    ]
    # JSON gets the traceback as a string field; the console renderer formats exceptions itself.
    exceptions: list[structlog.typing.Processor] = [structlog.processors.format_exc_info] if as_json else []
    structlog.configure(
        processors=[*shared, *exceptions, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # One write per line (message and newline together): processes sharing a stream never interleave
        # half lines, unbuffered (PYTHONUNBUFFERED) or not.
        logger_factory=_named_logger,
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(process=process)
    # Libraries (aiohttp, asyncpg, aio-pika, asyncio) log through the standard library: their warnings and
    # errors go through the same processors into the same stream (a StreamHandler writes a line at once too).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exceptions, renderer],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(level, logging.WARNING))
    # Python's own warnings (DeprecationWarning and the like) become log lines instead of raw stderr text.
    logging.captureWarnings(True)
