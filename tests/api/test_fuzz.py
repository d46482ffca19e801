"""A bounded Schemathesis run against the real api (its own /openapi.json, a funded key): no 5xx, only JSON
answers, every status, header and body as documented. `make fuzz` runs the long one (see fuzz/)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import asyncpg

from fuzz.harness import BOUNDED_PHASES, Target, run, seed
from tests.support.processes import ApiProcess

CASES = 150  # examples per operation and generation mode: GET and POST, positive and negative
SEED = 20261130


async def test_a_bounded_fuzz_run_finds_nothing(api: ApiProcess, pool: asyncpg.Pool, tmp_path: Path) -> None:
    key = await seed(pool)
    started = time.monotonic()
    summary = await asyncio.to_thread(
        run, Target(api.url, key), cases=CASES, seed=SEED, workdir=tmp_path, phases=BOUNDED_PHASES
    )
    elapsed = time.monotonic() - started
    print(f"\nfuzz summary ({elapsed:.0f} s): {json.dumps(summary)}")
    assert summary["failures"] == {}, summary
    assert summary["errors"] == [], summary
    assert summary["exit_code"] == 0, f"see {summary['output']}"
    assert summary["cases"] >= 200
    assert set(summary["generation_modes"]) == {"positive", "negative"}
    sent = set(summary["requests"])
    assert {"GET query", "POST application/json", "POST application/x-www-form-urlencoded"} <= sent
    assert "POST multipart/form-data" in sent
    assert {"200", "400"} <= set(summary["statuses"])
    assert not any(status.startswith("5") for status in summary["statuses"])
