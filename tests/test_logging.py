"""Log lines: whole JSON lines even when several processes share one stream unbuffered (the api's processes
under PANELFLOW_API_PROCESSES, containers with PYTHONUNBUFFERED), and secrets never written."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from shared.settings import Settings
from tests.support.processes import free_port
from tests.support.worker import SimProcess

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


LIBRARY_PROCESS = """
import logging
import structlog
from shared.logging import configure_logging
from shared.settings import Settings

configure_logging(Settings(log_format="json", log_level="INFO"), "writer")
structlog.contextvars.bind_contextvars(correlation_id="corr-1")
structlog.get_logger("panelflow.consumer").info("ours")
logging.getLogger("aio_pika.robust_connection").warning("Connection to %s closed", "amqp://broker")
logging.getLogger("asyncpg.pool").info("below the library threshold")
"""


def test_library_lines_carry_the_same_fields_as_ours() -> None:
    out = subprocess.run(
        [sys.executable, "-c", LIBRARY_PROCESS], capture_output=True, text=True, timeout=60, cwd=Path.cwd()
    )
    assert out.returncode == 0, out.stderr
    ours, library = [json.loads(line) for line in out.stderr.splitlines()]
    assert ours["logger"] == "panelflow.consumer"
    assert library["logger"] == "aio_pika.robust_connection"
    assert library["event"] == "Connection to amqp://broker closed"
    assert library["level"] == "warning"
    for record in (ours, library):
        assert record["correlation_id"] == "corr-1"
        assert record["process"] == "writer"
        assert record["timestamp"].endswith("Z")


async def test_every_line_of_a_process_is_json_library_lines_included(settings: Settings, logs_dir: Path) -> None:
    """The provider simulator as a user starts it: its own lines, aiohttp's error for a malformed request (with a
    traceback) and the shutdown lines are each one JSON object with the same fields."""
    sim = SimProcess(settings, logs_dir / "sim-json-lines.log", log_level="INFO", metrics_port_sim=free_port())
    await sim.started()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        assert answer.split(b" ")[1] == b"400", answer
        writer.close()
        await writer.wait_closed()
    finally:
        assert sim.stop() == 0
    records = []
    for line in sim.log_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    for record in records:
        assert {"event", "level", "logger", "timestamp"} <= record.keys(), record
        assert record["process"] == "provider_sim", record
    library = [r for r in records if r["logger"] == "aiohttp.server"]
    assert library, records
    assert library[0]["level"] == "error"
    assert library[0]["event"].startswith("Error handling request")
    assert "Traceback" in library[0]["exception"]
    assert "BadHttpMessage" in library[0]["exception"]
    assert any(r["event"] == "sim_starting" for r in records), records
