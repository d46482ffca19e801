"""Named fault-injection points for crash tests, off unless `PANELFLOW_FAILPOINTS` names them.

`PANELFLOW_FAILPOINTS=relay.after_publish=kill` makes the process SIGKILL itself at that point, the way a
power cut or the OOM killer would; the guarantee under test must hold anyway.
"""

from __future__ import annotations

import os
import signal


def parse(spec: str) -> dict[str, str]:
    points: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, action = item.partition("=")
        points[name] = action or "kill"
    return points


class Failpoints:
    def __init__(self, spec: str = "") -> None:
        self.points = parse(spec)

    def hit(self, name: str) -> None:
        action = self.points.get(name)
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "raise":
            raise RuntimeError(f"failpoint {name}")
