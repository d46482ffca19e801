"""`panelflow dlq list|replay --queue Q`: what a consumer group gave up on, and sending it back once fixed."""

from __future__ import annotations

import argparse
import json

from shared.cli.base import CommandError, Subparsers, command, group, positive_int
from shared.messaging import dlq
from shared.messaging.topology import QUEUES, WORKER_QUEUE
from shared.settings import Settings

_QUEUES = [spec.name for spec in QUEUES]


def register(commands: Subparsers) -> None:
    sub = group(commands, "dlq", "dead-letter queues of the consumer groups")
    listing = command(sub, "list", "show the messages in a queue's DLQ (they stay there)", _list)
    listing.add_argument("--queue", choices=_QUEUES, default=WORKER_QUEUE)
    listing.add_argument("--limit", type=positive_int, default=100)
    listing.add_argument("--json", action="store_true", help="one JSON object per line, body included")
    replay = command(sub, "replay", "send DLQ messages back to their consumers", _replay)
    replay.add_argument("--queue", choices=_QUEUES, default=WORKER_QUEUE)
    replay.add_argument("--limit", type=positive_int, help="at most this many (oldest first)")
    replay.add_argument("--message", action="append", metavar="ID", help="only this message id (repeatable)")


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    try:
        letters = await dlq.list_dead_letters(settings, args.queue, limit=args.limit)
    except (OSError, ConnectionError) as exc:
        raise CommandError(f"cannot reach RabbitMQ (PANELFLOW_AMQP_URL): {exc}") from exc
    for letter in letters:
        if args.json:
            print(json.dumps(letter.as_dict()))
        else:
            when = letter.dead_lettered_at.isoformat() if letter.dead_lettered_at else "?"
            body = letter.body.decode(errors="replace")
            print(
                f"{letter.message_id}  {letter.routing_key}  reason={letter.reason}  deaths={letter.deaths}  "
                f"at={when}  correlation={letter.correlation_id}  body={body[:200]}"
            )
    if not args.json:
        print(f"{len(letters)} message(s) in the {args.queue} DLQ")
    return 0


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    try:
        count = await dlq.replay_dead_letters(settings, args.queue, limit=args.limit, message_ids=args.message)
    except (OSError, ConnectionError) as exc:
        raise CommandError(f"cannot reach RabbitMQ (PANELFLOW_AMQP_URL): {exc}") from exc
    print(f"replayed {count} message(s) to {args.queue}")
    return 0
