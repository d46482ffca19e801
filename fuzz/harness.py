"""One fuzzing run: a funded account with a key and a service of every order type, then Schemathesis against the
api's /openapi.json (both methods, every body encoding, positive and negative inputs), summarised.

The checks: no 5xx, every answer JSON with a documented status, headers and body as the document says.
Shared by `make fuzz` (python -m fuzz, a long run) and tests/api/test_fuzz.py (a bounded one).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from shared.auth.keys import ACTION_SCOPES, generate_key, hash_key, key_prefix
from shared.db import accounts, catalog, keys
from shared.domain.order_types import ORDER_TYPES

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
BALANCE = Decimal("1000000")


@dataclass(frozen=True)
class Target:
    url: str  # the api's base URL
    key: str  # a funded key with every scope


async def seed(pool: asyncpg.Pool) -> str:
    """A funded account, a key with every scope, and one orderable service per order type; returns the key."""
    key = generate_key()
    async with pool.acquire() as conn, conn.transaction():
        account_id = await accounts.create_account(conn, email=f"fuzz-{key_prefix(key)}@example.test", balance=BALANCE)
        await keys.insert_key(
            conn,
            account_id=account_id,
            key_hash=hash_key(key),
            prefix=key_prefix(key),
            scopes=sorted(set(ACTION_SCOPES.values())),
            allow_ips=None,
            rate_limit_per_min=None,
        )
        for order_type in ORDER_TYPES:
            await catalog.add_service(
                conn,
                name=f"fuzz {order_type}",
                type=order_type,
                category="Fuzz",
                rate=Decimal("0.5"),
                min_quantity=1,
                max_quantity=100_000,
                refill=True,
                cancel=True,
                dripfeed=True,
                provider_id=None,
                provider_service_id=None,
            )
        await catalog.notify_catalog_changed(conn)
    return key


# The long run adds Schemathesis' coverage phase (boundary values, missing and wrong-typed parameters, odd
# content types and methods) to the random fuzzing; the bounded one in the test suite only fuzzes.
LONG_PHASES = "examples,coverage,fuzzing"
BOUNDED_PHASES = "fuzzing"


def command(
    target: Target, *, cases: int, seed: int, report: Path, phases: str, max_time: float | None = None
) -> list[str]:
    args = [
        str(SCHEMATHESIS),
        "run",
        f"{target.url}/openapi.json",
        "--url",
        target.url,
        "--header",
        f"X-API-Key: {target.key}",
        "--mode",
        "all",
        "--phases",
        phases,
        "--max-examples",
        str(cases),
        "--seed",
        str(seed),
        "--checks",
        ",".join(CHECKS),
        "--continue-on-failure",
        "--no-shrink",
        "--suppress-health-check",
        "all",
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    if max_time is not None:
        args += ["--max-time", str(int(max_time))]
    return args


def run(
    target: Target, *, cases: int, seed: int, workdir: Path, phases: str = LONG_PHASES, max_time: float | None = None
) -> dict[str, Any]:
    """Run Schemathesis and summarise its event stream: cases, statuses by count, failures by kind."""
    report = workdir / "schemathesis.ndjson"
    proc = subprocess.run(
        command(target, cases=cases, seed=seed, report=report, phases=phases, max_time=max_time),
        capture_output=True,
        text=True,
        check=False,
        cwd=workdir,  # its cache (crashes it replays first) stays with this run: a seed repeats a run exactly
    )
    (workdir / "schemathesis.out").write_text(proc.stdout + proc.stderr)
    summary = summarise(report.read_text() if report.exists() else "")
    summary.update(
        seed=seed,
        phases=phases,
        max_examples=cases,
        exit_code=proc.returncode,
        output=str(workdir / "schemathesis.out"),
    )
    summary["ok"] = summary["ok"] and proc.returncode == 0
    return summary


def summarise(events: str) -> dict[str, Any]:
    """Count what Schemathesis' NDJSON event stream recorded: every case sent, its status, every failed check."""
    cases = 0
    statuses: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    by_mode: Counter[str] = Counter()
    by_media: Counter[str] = Counter()
    examples: dict[str, str] = {}
    errors: list[str] = []
    for line in events.splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        kind, body = next(iter(event.items()))
        if kind == "NonFatalError" or kind == "FatalError":
            errors.append(str(body.get("info", body))[:500])
        if kind != "ScenarioFinished":
            continue
        recorder = body["recorder"]
        for case_id, interaction in recorder.get("interactions", {}).items():
            response = interaction.get("response")
            if response is None:
                continue
            cases += 1
            statuses[str(response["status_code"])] += 1
            case = recorder["cases"].get(case_id, {}).get("value", {})
            by_mode[case.get("meta", {}).get("generation", {}).get("mode", "?")] += 1
            by_media[f"{case.get('method')} {case.get('media_type') or 'query'}"] += 1
        for case_id, checks in recorder.get("checks", {}).items():
            for check in checks:
                if check["status"] == "failure":
                    failures[check["name"]] += 1
                    examples.setdefault(check["name"], case_id)
    return {
        "cases": cases,
        "statuses": dict(sorted(statuses.items())),
        "failures": dict(failures),
        "generation_modes": dict(by_mode),
        "requests": dict(sorted(by_media.items())),
        "failure_example_case_ids": examples,
        "errors": errors,
        "ok": cases > 0 and not failures and not errors,
    }
