"""A webhook receiver using only the standard library: verifies each delivery and prints it.

    python -m shared.webhooks.receiver_example --port 8099 --secret-file whsec.txt   (or --secret-file - : stdin)

`--wait SECONDS` waits that long for the secret file to appear (the compose stack starts the receiver before the
demo seed registers the webhook and writes its secret).

It is the copy-paste example of docs/webhooks.md (and the local receiver of the demo). It verifies the
Standard Webhooks signature and the timestamp window, answers 2xx quickly, and dedupes on `webhook-id`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_S = 300


def verify(secret: str, msg_id: str, timestamp: str, signatures: str, body: bytes) -> bool:
    if abs(time.time() - int(timestamp)) > TOLERANCE_S:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # During a secret rotation there are two signatures; any one that matches is enough.
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures.split(" "))


def make_handler(secret: str) -> type[BaseHTTPRequestHandler]:
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            msg_id = self.headers.get("webhook-id", "")
            ok = verify(
                secret,
                msg_id,
                self.headers.get("webhook-timestamp", "0"),
                self.headers.get("webhook-signature", ""),
                body,
            )
            if not ok:
                self.send_response(401)
                self.end_headers()
                return
            if msg_id not in seen:  # a retry of something already handled is acknowledged, not redone
                seen.add(msg_id)
                event = json.loads(body)
                # One write per line: deliveries arrive on several threads at once.
                print(f"verified {event['type']} {msg_id}: {json.dumps(event['data'])}\n", end="", flush=True)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler


def read_secret(path: str) -> str:
    """The secret from a file, or stdin for `-`: never from the command line, where `ps` and history show it."""
    if path == "-":
        text = sys.stdin.read()
    else:
        with open(path) as file:
            text = file.read()
    secret = text.strip()
    if not secret.startswith("whsec_"):
        raise SystemExit(f"{path}: expected the whsec_... secret that webhook.add returned")
    return secret


def main() -> None:
    parser = argparse.ArgumentParser(description="print verified panelflow webhooks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument(
        "--secret-file", required=True, help="a file holding the whsec_ secret webhook.add returned; - reads stdin"
    )
    parser.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="wait up to this long for the secret file to appear"
    )
    args = parser.parse_args()
    deadline = time.monotonic() + args.wait
    from_file = args.secret_file != "-"  # noqa: S105 (stdin, not a password)
    while from_file and not os.path.exists(args.secret_file) and time.monotonic() < deadline:
        time.sleep(0.5)
    ThreadingHTTPServer((args.host, args.port), make_handler(read_secret(args.secret_file))).serve_forever()


if __name__ == "__main__":
    main()
