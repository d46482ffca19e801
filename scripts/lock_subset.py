"""The runtime part of requirements.lock, for the image (deploy/Dockerfile), whose dependencies are checked by hash.

The lock pins the dev tools too, and pip cannot hash-check a local directory (panelflow itself), so the image is
built in three steps: pip resolves panelflow against the lock's versions without hashes (`pins`, then
`pip install --dry-run --report`); the packages it chose are installed from the lock with their hashes required
(`subset`); panelflow itself goes in without dependencies.

    python scripts/lock_subset.py pins requirements.lock > pins.txt
    pip install --dry-run --ignore-installed --report report.json --constraint pins.txt .
    python scripts/lock_subset.py subset requirements.lock report.json > runtime.lock
    pip install --require-hashes --no-deps -r runtime.lock && pip install --no-deps .

`subset` fails (exit 1) when the report lists a package the lock does not pin (panelflow itself aside).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\]+)")
OURS = "panelflow"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def entries(lock: str) -> dict[str, str]:
    """Each pinned package of the lock (canonical name) -> its lines: the pin and its hash lines."""
    found: dict[str, str] = {}
    name: str | None = None
    for line in lock.splitlines():
        pin = _PIN.match(line)
        if pin:
            name = canonical(pin.group(1))
            found[name] = line + "\n"
        elif name is not None and line.lstrip().startswith("--hash="):
            found[name] += line + "\n"
        else:
            name = None
    return found


def pins(lock: str) -> str:
    """`name==version` lines only: a constraints file without hashes."""
    return "".join(f"{m.group(1)}=={m.group(2)}\n" for line in lock.splitlines() if (m := _PIN.match(line)))


def subset(lock: str, report: dict[str, list[dict[str, dict[str, str]]]]) -> str:
    """The lock's entries (with hashes) of the packages a pip installation report lists."""
    locked = entries(lock)
    wanted = {canonical(item["metadata"]["name"]) for item in report["install"]} - {OURS}
    missing = sorted(wanted - locked.keys())
    if missing:
        raise SystemExit(f"lock_subset: not pinned in the lock: {', '.join(missing)}")
    return "".join(locked[name] for name in sorted(wanted))


def main() -> int:
    parser = argparse.ArgumentParser(description="the runtime part of requirements.lock, with its hashes")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("pins", help="name==version lines, no hashes").add_argument("lock", type=Path)
    chosen = sub.add_parser("subset", help="the lock's entries of the packages in a pip --report")
    chosen.add_argument("lock", type=Path)
    chosen.add_argument("report", type=Path)
    args = parser.parse_args()
    lock = args.lock.read_text()
    if args.command == "pins":
        sys.stdout.write(pins(lock))
    else:
        sys.stdout.write(subset(lock, json.loads(args.report.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
