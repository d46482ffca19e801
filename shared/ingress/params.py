"""Request parameters of `/api/v2`: query string and body (form, multipart or JSON) merged, body winning.

Resellers' clients send every shape there is, so all of them land in one flat `dict[str, str]`; the action
use cases only ever see strings, as they would from a form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from shared.domain.bounds import check_client_text, client_text_problem
from shared.errors import BodyTooLarge, IncorrectOrderId, InvalidApiKey, InvalidParameter

_MULTIPART = "multipart/form-data"
_ID_SPLIT = re.compile(r"[\s,]+")
# Ids are BIGINT: more digits than this cannot be one of ours and must not reach the database.
_ID_DIGITS_MAX = 18
# In a form or query string, what needs decoding or checking: escapes, and characters no clean text holds (C0, DEL,
# C1, surrogates from a surrogateescape'd request line); without any of them every field is clean as it stands.
_PLAIN_FORM_UNSAFE = re.compile("[%\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# What aiohttp's multipart reader raises on a body that is no multipart form (no or a wrong boundary, a part
# without a name, an unknown charset, bytes that are not text in it); BadHttpMessage: its parser of a part's
# headers refuses e.g. control characters in them.
_MULTIPART_ERRORS = (ValueError, AssertionError, LookupError, TypeError, KeyError, BadHttpMessage)


async def read_params(request: web.Request, max_body_bytes: int) -> dict[str, str]:
    """The parameters of an `/api/v2` call: the query string's, then the body's on top (the body wins).

    A name given twice within the query or within the body, text that is not UTF-8, a NUL, another control
    character or an unpaired surrogate in a name or value, a body that is not what its content type says:
    `InvalidParameter` (400) naming what is wrong, never an exception of the parsers.
    """
    params: dict[str, str] = {}
    raw_query = request.rel_url.raw_query_string
    if raw_query:  # parsing an empty query still costs a URL parse on the hot path
        params.update(_urlencoded(raw_query, "query string"))
    if request.method != "POST" or not request.body_exists:
        return params
    if request.content_length is not None and request.content_length > max_body_bytes:
        raise BodyTooLarge()
    content_type = request.content_type
    if content_type == _MULTIPART:
        params.update(_checked(await _multipart_pairs(request)))
    elif content_type == "application/json":
        params.update(_checked(_from_json(await request.read())))
    else:
        # Forms, and the form bodies some clients post without a content type (or as text/plain).
        params.update(_urlencoded(_utf8(await request.read(), "Request body"), "body"))
    return params


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParameter(f"{what} is not valid UTF-8") from None


def _urlencoded(text: str, where: str) -> dict[str, str]:
    if _PLAIN_FORM_UNSAFE.search(text) is None:
        # The common case, on the hot path: nothing escaped and no character the text rules look at, so every
        # name and value is clean as it stands; only the names need to be told apart.
        params: dict[str, str] = {}
        for field in text.split("&"):
            if field:
                name, _, value = field.replace("+", " ").partition("=")
                if name in params:
                    raise InvalidParameter(f"Parameter {_name(name)} is given more than once")
                params[name] = value
        return params
    return _checked(_pairs_of_urlencoded(text, where))


def _pairs_of_urlencoded(text: str, where: str) -> Iterable[tuple[str, str]]:
    for field in text.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        try:
            name = unquote_plus(name, errors="strict")
        except UnicodeDecodeError:
            raise InvalidParameter(f"A parameter name in the {where} is not valid UTF-8") from None
        try:
            yield name, unquote_plus(value, errors="strict")
        except UnicodeDecodeError:
            raise InvalidParameter(f"Parameter {_name(name)} is not valid UTF-8") from None


async def _multipart_pairs(request: web.Request) -> list[tuple[str, str]]:
    try:
        form = await request.post()
    except UnicodeDecodeError:
        raise InvalidParameter("Request body is not valid UTF-8") from None
    except _MULTIPART_ERRORS:
        raise InvalidParameter("Request body is not a valid multipart/form-data body") from None
    # Uploaded files are not parameters of this API.
    return [(name, field) for name, field in form.items() if isinstance(field, str)]


def _checked(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The pairs as a dict; a name given twice or unclean text (see `shared.domain.bounds`) is refused."""
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise InvalidParameter(f"Parameter {_name(name)} is given more than once")
        params[name] = value
    # One scan of all names and one of all values (the hot path); the field at fault is looked for only then.
    if client_text_problem("".join(params), lines=False) or client_text_problem("".join(params.values())):
        for name, value in params.items():
            problem = client_text_problem(name, lines=False)
            if problem is not None:
                raise InvalidParameter(f"A parameter name contains {problem}")
            check_client_text(name, value)
    return params


def _name(name: str) -> str:
    return name if client_text_problem(name, lines=False) is None and len(name) <= 64 else repr(name)[:64]


class _DuplicateName(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _DuplicateName(name)
            seen.add(name)
    return data


def _from_json(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParameter("Request body is not valid UTF-8") from None
    try:
        data = json.loads(text, object_pairs_hook=_unique_object) if text.strip() else {}
    except _DuplicateName as exc:
        raise InvalidParameter(f"Parameter {_name(exc.name)} is given more than once") from None
    except RecursionError:
        raise InvalidParameter("Request body is nested too deeply") from None
    except ValueError as exc:
        raise InvalidParameter("Request body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise InvalidParameter("Request body must be a JSON object")
    return [(str(name), v) for name, value in data.items() if (v := _json_value(name, value)) is not None]


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
    raise InvalidParameter(f"Parameter {_name(name)} has an unsupported JSON type")


def api_key(params: Mapping[str, str], request: web.Request) -> str | None:
    key = params.get("key") or request.headers.get("X-API-Key") or None
    if key is not None and client_text_problem(key, lines=False) is not None:
        raise InvalidApiKey()  # a header aiohttp decoded with surrogateescape: no key of ours looks like it
    return key


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
