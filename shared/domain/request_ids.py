"""Which request id an `add` is placed under: the `request_id` parameter, the `Idempotency-Key` header (the same
thing by Stripe's name), or — for a key of the classic profile that sent neither — one of our own.

Pure; the ingress hands in the two values it received and the key's profile.
"""

from __future__ import annotations

from shared.domain.order_types import REQUEST_ID_RE, validate_request_id
from shared.errors import InvalidParameter

MISSING_REQUEST_ID = (
    "Missing required parameter: request_id (send a unique request_id with each order, or the Idempotency-Key "
    "header, and the same one again when you retry it: a retry is then never placed twice)"
)
HEADER_INVALID = "Idempotency-Key must be 1 to 128 printable ASCII characters"
BOTH_DIFFER = "request_id and the Idempotency-Key header differ: send one of them, or the same value in both"
# Ids we make for classic orders sent without one start with this: a space, which no client id may hold, so
# they can never meet a request id a client sends.
GENERATED_PREFIX = "classic "


class MissingRequestId(InvalidParameter):
    message = MISSING_REQUEST_ID

    def __init__(self) -> None:
        super().__init__(MISSING_REQUEST_ID)


def chosen_request_id(param: str | None, header: str | None, *, required: bool) -> str | None:
    """The client's request id (validated), or None when it sent none and none is `required`.

    Raises MissingRequestId (none sent, one required), InvalidParameter (malformed, or the two differ).
    """
    if header is not None and not REQUEST_ID_RE.match(header):
        raise InvalidParameter(HEADER_INVALID)
    if param is None or param == "":
        if header is not None:
            return header
        if required:
            raise MissingRequestId()
        return None
    param = validate_request_id(param)
    if header is not None and header != param:
        raise InvalidParameter(BOTH_DIFFER)
    return param


def generated_request_id(token: str) -> str:
    """A classic order's own request id, from a unique `token` (one per HTTP request: a batch the placer
    re-runs after a lost connection then finds the order it placed instead of placing it again)."""
    return GENERATED_PREFIX + token


def is_generated(request_id: str) -> bool:
    return request_id.startswith(GENERATED_PREFIX)
