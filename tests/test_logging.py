"""Log lines: whole JSON lines even when several processes share one stream unbuffered (the api's processes
under PANELFLOW_API_PROCESSES, containers with PYTHONUNBUFFERED), and secrets never written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LOGGING_PROCESS = """
import structlog
from shared.logging import configure_logging
from shared.settings import Settings

configure_logging(Settings(log_format="json", log_level="INFO"), "writer")
log = structlog.get_logger("t")
for n in range(3000):
    log.info("line", n=n, filler="x" * 200, api_key="k-123")
"""


def test_processes_sharing_a_stream_write_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "shared.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with path.open("ab") as stream:
        writers = [
            subprocess.Popen([sys.executable, "-c", LOGGING_PROCESS], stderr=stream, env=env, cwd=Path.cwd())
            for _ in range(3)
        ]
        for writer in writers:
            assert writer.wait(60) == 0
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # a half line or two on one line would not parse
    assert len(records) == 3 * 3000
    assert all(r["event"] == "line" and r["api_key"] == "[redacted]" for r in records)
