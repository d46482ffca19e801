"""Every process tunes the cyclic garbage collector once started (shared/kit/gc_tuning.py, via ProcessOps)."""

from __future__ import annotations

import json
from pathlib import Path

from shared.kit.gc_tuning import OLDER_THRESHOLDS
from shared.settings import Settings
from tests.support.processes import ApiProcess


def _gc_lines(log: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "gc_tuned"]


async def test_a_started_api_runs_with_the_configured_thresholds_and_a_frozen_heap(
    settings: Settings, logs_dir: Path
) -> None:
    api = await ApiProcess(settings, logs_dir / "api-gc.log", gc_threshold=40_000).started()
    try:
        tuned = _gc_lines(api.log_text())
    finally:
        api.stop()

    assert len(tuned) == 1, api.log_text()[-2000:]
    assert tuned[0]["thresholds"] == [40_000, *OLDER_THRESHOLDS]
    frozen = tuned[0]["frozen"]
    assert isinstance(frozen, int)
    assert frozen > 10_000  # the objects of the imports and the application


async def test_zero_leaves_the_collector_alone(settings: Settings, logs_dir: Path) -> None:
    api = await ApiProcess(settings, logs_dir / "api-gc-off.log", gc_threshold=0).started()
    try:
        log = api.log_text()
    finally:
        api.stop()

    assert "ops_server_started" in log, log[-2000:]  # started, and logging
    assert _gc_lines(log) == []
