"""What each action and each order type takes, as the request schemas of the document.

Every parameter has a kind; a kind is one JSON Schema for form bodies and query strings (text only) and one for
JSON bodies (which may also carry numbers, and lists for parameters that are lines). The tables here must name
every action of `shared.ingress.registry` and every order type of `shared.domain.order_types`: the document
builder refuses to build otherwise, and tests/apidoc checks the order-type table against `draft_order` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.domain.bounds import CLIENT_INT_DIGITS_MAX, INT4_MAX
from shared.domain.order_types import LINK_MAX, SUBSCRIPTION_DELAYS
from shared.settings import Settings
from shared.webhooks.endpoints import SINCE_MAX

Schema = dict[str, Any]

ID_DIGITS_MAX = 18  # shared.ingress.params: ids are BIGINT
TEXT_MAX = 1000
# shared.domain.bounds: client text holds no NUL, no other C0 control but tab and newlines, no DEL or C1 control.
CLEAN_TEXT = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    description: str
    required: bool = True


@dataclass(frozen=True)
class ActionDoc:
    summary: str
    params: tuple[Param, ...] = ()
    # Groups of which at least one must be given, e.g. (("order",), ("orders",)).
    one_of: tuple[tuple[str, ...], ...] = ()
    exclusive: bool = False  # exactly one of `one_of` (else at least one; the batch form wins)
    notes: str = ""


@dataclass(frozen=True)
class OrderTypeDoc:
    params: tuple[Param, ...]
    charged: str
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _digits(max_digits: int) -> str:
    return f"^[0-9]{{1,{max_digits}}}$"


def value_schema(kind: str, *, json_body: bool, settings: Settings) -> Schema:
    """The schema of one parameter of `kind` in a form/query (`json_body=False`) or a JSON body."""
    if kind == "id":
        text: Schema = {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}
        number: Schema = {"type": "integer", "minimum": 1, "maximum": 10**ID_DIGITS_MAX - 1}
        return {"anyOf": [number, text]} if json_body else text
    if kind in ("count", "count0"):
        minimum = 1 if kind == "count" else 0
        text = {
            "type": "string",
            "pattern": _digits(CLIENT_INT_DIGITS_MAX),
            "description": f"ASCII digits, {minimum} to {INT4_MAX}.",
        }
        number = {"type": "integer", "minimum": minimum, "maximum": INT4_MAX}
        return {"anyOf": [number, text]} if json_body else text
    if kind == "ids":
        limit = settings.batch_ids_max
        text = {
            "type": "string",
            "pattern": r"^[0-9, \n]+$",
            "description": f"Ids separated by commas or whitespace, at most {limit} distinct ones.",
        }
        return text
    if kind == "text":
        return {"type": "string", "minLength": 1, "maxLength": TEXT_MAX, "pattern": CLEAN_TEXT}
    if kind == "lines":
        lines_max = settings.list_lines_max
        text = {
            "type": "string",
            "minLength": 1,
            "maxLength": lines_max * TEXT_MAX,
            "pattern": CLEAN_TEXT,
            "description": f"One item per line (newline-separated), no empty lines, at most {lines_max:,} lines.",
        }
        if not json_body:
            return text
        items: Schema = {"type": "array", "minItems": 1, "maxItems": lines_max, "items": {"type": "string"}}
        return {"anyOf": [text, items]}
    if kind == "link":
        return {
            "type": "string",
            "format": "uri",
            "maxLength": LINK_MAX,
            "pattern": r"^[hH][tT][tT][pP][sS]?://[^\s/?#]+\S*$",
        }
    if kind == "delay":
        choices = [str(d) for d in SUBSCRIPTION_DELAYS]
        text = {"type": "string", "enum": choices}
        return {"anyOf": [{"type": "integer", "enum": list(SUBSCRIPTION_DELAYS)}, text]} if json_body else text
    if kind == "date":
        return {"type": "string", "pattern": r"^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}$", "description": "d/m/Y"}
    if kind == "request_id":
        return {"type": "string", "pattern": r"^[\x21-\x7e]{1,128}$"}
    if kind == "url":
        return {"type": "string", "format": "uri", "minLength": 1}
    if kind == "events":
        return {"type": "string", "description": "Event types separated by commas; absent or empty: all of them."}
    if kind == "flag":
        text = {"type": "string", "enum": ["0", "1", "true", "false"]}
        return {"anyOf": [{"type": "integer", "enum": [0, 1]}, {"type": "boolean"}, text]} if json_body else text
    if kind == "uuid":
        return {"type": "string", "format": "uuid"}
    if kind == "unix":
        text = {"type": "string", "pattern": _digits(CLIENT_INT_DIGITS_MAX), "description": f"At most {SINCE_MAX}."}
        return {"anyOf": [{"type": "integer", "minimum": 0, "maximum": SINCE_MAX}, text]} if json_body else text
    raise ValueError(f"unknown parameter kind {kind!r}")


ORDER = Param("order", "id", "An order id.", required=False)
ORDERS = Param("orders", "ids", "Order ids (batch form; wins over `order`).", required=False)
WEBHOOK = Param("webhook", "id", "A webhook endpoint id, as `webhook.add` answered it.")

ACTIONS: dict[str, ActionDoc] = {
    "services": ActionDoc("The catalog: every service that can be ordered, with its type, rate and limits."),
    "add": ActionDoc(
        "Place an order. The service's `type` decides which parameters it takes (one schema per order type).",
        (
            Param("service", "id", "A service id from `services`."),
            Param(
                "request_id",
                "request_id",
                "Your id of this order: a retry with the same one places nothing new and answers the original "
                "order; with other parameters it is a 409. Required, here or as the `Idempotency-Key` header "
                "(keys of the classic profile may send neither: then nothing makes a retry idempotent).",
                required=False,
            ),
        ),
        notes="Money is reserved when the order is accepted; the charge is rate × charged quantity / 1000 "
        "(Package types: the rate is the flat price), rounded half-up to 5 places.",
    ),
    "status": ActionDoc(
        "The status of one order (`order`) or of several (`orders`: an answer per id, errors per id).",
        (ORDER, ORDERS),
        one_of=(("order",), ("orders",)),
    ),
    "refill": ActionDoc(
        "Ask for a refill of a Completed or Partial order whose service offers refills.",
        (ORDER, ORDERS),
        one_of=(("order",), ("orders",)),
    ),
    "refill_status": ActionDoc(
        "The status of one refill (`refill`) or of several (`refills`).",
        (
            Param("refill", "id", "A refill id.", required=False),
            Param("refills", "ids", "Refill ids (batch form; wins over `refill`).", required=False),
        ),
        one_of=(("refill",), ("refills",)),
    ),
    "cancel": ActionDoc(
        "Cancel orders: a Pending one that never reached the upstream at once with a full refund; an order in "
        "progress, or a Pending one whose purchase upstream may have happened, where the service allows it (the "
        "outcome arrives through `status`). Always answers a list, one result per id.",
        (ORDER, ORDERS),
        one_of=(("order",), ("orders",)),
    ),
    "balance": ActionDoc("The account's balance and currency."),
    "webhook.add": ActionDoc(
        "Subscribe an endpoint to events. The secret is shown once. POST only.",
        (
            Param("url", "url", "The endpoint: https, resolving only to public addresses."),
            Param("events", "events", "Event types to deliver (comma-separated); default all.", required=False),
        ),
    ),
    "webhook.list": ActionDoc("The account's webhook endpoints."),
    "webhook.delete": ActionDoc("Delete an endpoint.", (WEBHOOK,)),
    "webhook.test": ActionDoc("Send a `webhook.test` event to one endpoint.", (WEBHOOK,)),
    "webhook.deliveries": ActionDoc(
        "The newest delivery attempts to an endpoint.",
        (WEBHOOK, Param("limit", "id", "How many attempts (at most 100; default 20).", required=False)),
    ),
    "webhook.replay": ActionDoc(
        "Deliver events again to an enabled endpoint: one (`event`) or all since a time (`since`).",
        (
            WEBHOOK,
            Param("event", "uuid", "An event id (the `webhook-id` header of its deliveries).", required=False),
            Param("since", "unix", "Unix time in seconds.", required=False),
        ),
        one_of=(("event",), ("since",)),
        exclusive=True,
    ),
    "webhook.rotate": ActionDoc(
        "A new signing secret; the old one keeps signing beside it for 24 hours, or stops at once with `revoke`.",
        (
            WEBHOOK,
            Param("revoke", "flag", "1: the old secret stops signing at once (it leaked); default 0.", required=False),
        ),
    ),
}

_LINK = Param("link", "link", "The http(s) URL to promote, at most 1,000 characters.")
_QUANTITY = Param("quantity", "count", "Within the service's `min`..`max`.")


def _text(name: str, description: str) -> Param:
    return Param(name, "text", description)


def _lines(name: str, description: str) -> Param:
    return Param(name, "lines", description)


ORDER_TYPES: dict[str, OrderTypeDoc] = {
    "Default": OrderTypeDoc(
        (
            _LINK,
            _QUANTITY,
            Param("runs", "count", "Drip-feed: how many runs (with `interval`).", required=False),
            Param("interval", "count", "Drip-feed: minutes between runs (with `runs`).", required=False),
        ),
        "quantity × runs",
        "Drip-feed (`runs` and `interval`, both or neither) only where the service has `dripfeed`.",
    ),
    "Package": OrderTypeDoc((_LINK,), "1 package: the service's rate is the flat price"),
    "SEO": OrderTypeDoc((_LINK, _QUANTITY, _lines("keywords", "Keywords, one per line.")), "quantity"),
    "Custom Comments": OrderTypeDoc((_LINK, _lines("comments", "Comments, one per line.")), "number of lines"),
    "Custom Comments Package": OrderTypeDoc(
        (_LINK, _lines("comments", "Comments, one per line.")), "1 package: flat price"
    ),
    "Mentions": OrderTypeDoc((_LINK, _QUANTITY, _text("usernames", "Usernames to mention.")), "quantity"),
    "Mentions with Hashtags": OrderTypeDoc(
        (_LINK, _QUANTITY, _text("usernames", "Usernames to mention."), _text("hashtags", "Hashtags.")), "quantity"
    ),
    "Mentions Custom List": OrderTypeDoc((_LINK, _lines("usernames", "Usernames, one per line.")), "number of lines"),
    "Mentions Hashtag": OrderTypeDoc((_LINK, _QUANTITY, _text("hashtag", "The hashtag.")), "quantity"),
    "Mentions User Followers": OrderTypeDoc(
        (_LINK, _QUANTITY, _text("username", "Whose followers to mention.")), "quantity"
    ),
    "Mentions Media Likers": OrderTypeDoc(
        (_LINK, _QUANTITY, _text("media", "The media whose likers to mention.")), "quantity"
    ),
    "Comment Likes": OrderTypeDoc((_LINK, _QUANTITY, _text("username", "The comment's author.")), "quantity"),
    "Comment Replies": OrderTypeDoc(
        (_LINK, _text("username", "The comment's author."), _lines("comments", "Replies, one per line.")),
        "number of lines",
    ),
    "Poll": OrderTypeDoc(
        (_LINK, _QUANTITY, Param("answer_number", "count", "Which answer to vote for (1 = the first).")),
        "quantity",
    ),
    "Invites from Groups": OrderTypeDoc((_LINK, _QUANTITY, _text("groups", "The groups to invite from.")), "quantity"),
    "Subscriptions": OrderTypeDoc(
        (
            _text("username", "The account whose new posts are served."),
            Param("min", "count", "Least quantity per post (within the service's limits)."),
            Param("max", "count", "Largest quantity per post (within the service's limits; not below `min`)."),
            Param("posts", "count", "How many new posts to serve."),
            Param("old_posts", "count0", "How many existing posts to serve too (default 0).", required=False),
            Param("delay", "delay", "Minutes to wait after a post appears."),
            Param("expiry", "date", "The last day of the subscription, as d/m/Y.", required=False),
        ),
        "max × (posts + old_posts), reserved up front; what was not delivered is refunded when it ends",
        "No `link`: the subscription follows `username`.",
    ),
}
