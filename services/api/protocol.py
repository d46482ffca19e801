"""Errors aiohttp answers itself, before any handler or middleware runs (a request line over `max_line_size`,
over-long or malformed headers, a malformed request or body framing), answered as JSON `{"error": ...}` like
every other answer of the api, and without a word of the request: its line holds the API key.

aiohttp has no hook for these answers (aio-libs/aiohttp#3287): its low-level `RequestHandler.handle_error`
builds a text/plain body from the parser's message, which quotes the offending line, and logs that message
with a traceback. `install()` makes the api process's server use `JsonErrorRequestHandler` instead.
"""

from __future__ import annotations

import json
from http import HTTPStatus

import structlog
from aiohttp import web_protocol, web_server
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import Response, StreamResponse

log = structlog.get_logger("services.api")

# aiohttp's own limits, stated here so they are ours: the request line (the key may ride in its query string)
# and each header line. Longer ones are answered 400 by `JsonErrorRequestHandler`.
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190

LINE_TOO_LONG = "Request line or header too long"
MALFORMED = "Malformed HTTP request"
INTERNAL_ERROR = "Internal server error"


def error_message(status: int, exc: BaseException | None) -> str:
    """The public message for an error aiohttp raised: by the kind of error only, never its text."""
    if status >= 500:
        return INTERNAL_ERROR
    if isinstance(exc, LineTooLong):
        return LINE_TOO_LONG
    if isinstance(exc, BadHttpMessage) or status == 400:
        return MALFORMED
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return MALFORMED


class JsonErrorRequestHandler(web_protocol.RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        # The exception's text quotes the request (and so the key): only its class is logged.
        log.info("http_protocol_error", status=status, error=type(exc).__name__ if exc else None)
        if request.writer.output_size > 0:  # an answer has started: the connection is broken, as in aiohttp
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        body = json.dumps({"error": error_message(status, exc)}).encode()
        response = Response(
            status=status, body=body, content_type="application/json", headers={"Cache-Control": "no-store"}
        )
        response.force_close()
        return response


_installed = False


def install() -> None:
    """Make every aiohttp server of this process answer its own errors with `JsonErrorRequestHandler`.

    For the api process only (its `__main__`): `web.Server` builds its connections' handler from this module
    global at each connection.
    """
    global _installed
    if not _installed:
        web_server.RequestHandler = JsonErrorRequestHandler  # type: ignore[misc]
        _installed = True


def handler_args() -> dict[str, int]:
    """The limits `web.Application(handler_args=...)` hands to each connection's handler."""
    return {"max_line_size": MAX_LINE_SIZE, "max_field_size": MAX_FIELD_SIZE}
