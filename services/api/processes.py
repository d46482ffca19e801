"""`api_processes > 1`: the api as N processes on one port (SO_REUSEPORT), started and stopped together.

The parent only supervises: it starts `python -m services.api` N times (each binds the port with reuse_port),
forwards SIGTERM/SIGINT to them, and when one dies on its own it stops the others, so an orchestrator sees the
failure and restarts the whole pod as it would a single process.

The children keep their metrics in one fresh directory (shared/kit/multiprocess_metrics.py), so each answers
`/metrics` (they share the ops port too) with the sum over all of them; the parent removes it on exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

import structlog

from shared.kit import multiprocess_metrics

# Set in each child: it serves instead of supervising.
CHILD_ENV = "PANELFLOW_API_CHILD"
# On SIGTERM the children drain (see __main__.SHUTDOWN_TIMEOUT_S); after this long they are killed.
STOP_GRACE_S = 30.0

log = structlog.get_logger("services.api")


def is_child() -> bool:
    return CHILD_ENV in os.environ


def supervise(processes: int) -> int:
    """Run `processes` api children until a signal or a child's exit; returns the exit code."""
    metrics_dir = multiprocess_metrics.new_directory()
    try:
        return _run(processes, metrics_dir)
    finally:
        multiprocess_metrics.remove(metrics_dir)


def _run(processes: int, metrics_dir: str) -> int:
    env = {**os.environ, **multiprocess_metrics.child_env(metrics_dir)}
    children = [
        subprocess.Popen([sys.executable, "-m", "services.api"], env={**env, CHILD_ENV: str(n)})
        for n in range(processes)
    ]
    stopping = False
    forwarded = signal.SIGTERM

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping, forwarded
        stopping, forwarded = True, signal.Signals(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    log.info("api_processes_started", processes=processes, pids=[c.pid for c in children], metrics_dir=metrics_dir)
    while all(c.poll() is None for c in children):
        time.sleep(0.2)
    _forget_exited(children, metrics_dir)
    if not stopping:
        failed = [(c.pid, c.returncode) for c in children if c.returncode is not None]
        log.error("api_process_exited", exited=failed)
        forward(signal.SIGTERM, None)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    _forget_exited(children, metrics_dir)
    # A child still starting when the signal came dies of it before it can drain: it had nothing in flight.
    clean = {0, -forwarded}
    return 0 if stopping and all(c.returncode in clean for c in children) else 1


def _forget_exited(children: list[subprocess.Popen[bytes]], metrics_dir: str) -> None:
    """Drop the gauges of the children that exited: the survivors' /metrics must not report a dead one's."""
    for child in children:
        if child.returncode is not None:
            multiprocess_metrics.child_exited(metrics_dir, child.pid)
