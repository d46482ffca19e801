"""Request parameters of `/api/v2`: query string and body (form, multipart or JSON) merged, body winning.

Resellers' clients send every shape there is, so all of them land in one flat `dict[str, str]`; the action
use cases only ever see strings, as they would from a form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from shared.errors import BodyTooLarge, IncorrectOrderId, InvalidParameter

_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_ID_SPLIT = re.compile(r"[\s,]+")
# Ids are BIGINT: more digits than this cannot be one of ours and must not reach the database.
_ID_DIGITS_MAX = 18


async def read_params(request: web.Request, max_body_bytes: int) -> dict[str, str]:
    params: dict[str, str] = {}
    if request.query_string:  # parsing an empty query still costs a URL parse on the hot path
        for name, value in request.query.items():
            params.setdefault(name, value)
    if request.method != "POST" or not request.body_exists:
        return params
    if request.content_length is not None and request.content_length > max_body_bytes:
        raise BodyTooLarge()
    content_type = request.content_type
    if content_type in _FORM_TYPES:
        form = await request.post()
        for name, field in form.items():
            if isinstance(field, str):  # uploaded files are not parameters of this API
                params[name] = field
    elif content_type == "application/json":
        params.update(_from_json(await request.read()))
    else:
        # Some clients post a form body without a content type (or as text/plain): read it as a form.
        text = (await request.read()).decode("utf-8", "replace")
        params.update(parse_qsl(text, keep_blank_values=True))
    return params


def _from_json(body: bytes) -> dict[str, str]:
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError as exc:
        raise InvalidParameter("Request body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise InvalidParameter("Request body must be a JSON object")
    return {str(name): text for name, value in data.items() if (text := _json_value(name, value)) is not None}


def _json_value(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
        # Lists arrive where the form would carry lines (comments, usernames) or comma lists (orders):
        # newline-joined serves both, since id lists split on any whitespace or comma.
        return "\n".join(str(v) for v in value)
    raise InvalidParameter(f"Parameter {name} has an unsupported JSON type")


def api_key(params: Mapping[str, str], request: web.Request) -> str | None:
    return params.get("key") or request.headers.get("X-API-Key") or None


# --- ids ---------------------------------------------------------------------------------------------------


def parse_id(text: str, error: type[Exception] = IncorrectOrderId) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > _ID_DIGITS_MAX:
        raise error()
    value = int(text)
    if value <= 0:
        raise error()
    return value


def split_ids(text: str, *, limit: int, name: str) -> list[str]:
    """The distinct tokens of a batch parameter, in order; at most `limit` of them."""
    tokens = list(dict.fromkeys(t for t in _ID_SPLIT.split(text) if t))
    if not tokens:
        raise InvalidParameter(f"Parameter {name} must list at least one id")
    if len(tokens) > limit:
        raise InvalidParameter(f"Parameter {name} must list at most {limit} ids")
    return tokens
