"""`/metrics` of a process that is one of several (the api with `api_processes > 1`): everyone's numbers, summed.

prometheus-client's multiprocess mode: the supervising parent makes a fresh directory (`new_directory`) and starts
each child with `PROMETHEUS_MULTIPROC_DIR` pointing at it (`child_env`), so every counter, histogram and gauge of
every child lives in a memory-mapped file there; whichever child a scrape reaches answers from all the files
(`scrape`). When a child exits the parent calls `child_exited`, which drops its gauges (each gauge declares how
children combine, `multiprocess_mode` in shared/observability/metrics.py) and keeps its counts: a counter never
goes back. The directory is removed when the parent exits (`remove`); a new start begins from zero, as a single
process does after a restart.

Not in this mode: Python's `process_*`/`python_*` collectors (they describe one process). The build info (an
`Info`, the same in every child) comes from the answering process itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from shared.observability import metrics

ENV = "PROMETHEUS_MULTIPROC_DIR"


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def new_directory() -> str:
    """A fresh, empty directory for one run of the children (under `PROMETHEUS_MULTIPROC_DIR` when set)."""
    return tempfile.mkdtemp(prefix="panelflow-metrics-", dir=os.environ.get(ENV) or None)


def child_env(directory: str) -> dict[str, str]:
    return {ENV: directory}


def child_exited(directory: str, pid: int) -> None:
    mark_process_dead(pid, directory)


def remove(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


class _ProcessLocal(Collector):
    """The metrics that are not kept in the shared files, from this process."""

    def collect(self):  # type: ignore[no-untyped-def]
        yield from metrics.BUILD_INFO.collect()


def scrape() -> bytes:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, os.environ[ENV])
    registry.register(_ProcessLocal())
    return generate_latest(registry)
