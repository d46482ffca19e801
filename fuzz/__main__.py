"""`python -m fuzz` (`make fuzz`): a long Schemathesis run against a fresh api process; prints a JSON summary.

Settings (environment, or the options of the same name): FUZZ_CASES (examples per operation and generation
mode of the fuzzing phase, 1500; with the coverage phase's cases a run sends about 5,500), FUZZ_SEED (random
when unset; printed in the summary, and the same seed repeats the run), FUZZ_MAX_TIME (seconds, optional).
Uses its own database and AMQP names on the configured Postgres and RabbitMQ, removed afterwards; exits 1 when
any check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import uuid
from pathlib import Path

from fuzz.harness import Target, run, seed
from shared.db.migrate import migrate
from shared.db.pool import connect, create_pool, drop_database, ensure_database, with_database
from shared.settings import Settings
from tests.support.isolation import delete_amqp_names
from tests.support.processes import ApiProcess


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n\n")[0])
    env = os.environ.get
    parser.add_argument("--cases", type=int, default=int(env("FUZZ_CASES", "1500")))
    parser.add_argument("--seed", type=int, default=int(env("FUZZ_SEED", str(random.SystemRandom().randrange(10**6)))))
    parser.add_argument("--max-time", type=float, default=float(env("FUZZ_MAX_TIME", "0")) or None)
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> int:
    run_id = uuid.uuid4().hex[:8]
    base = Settings()
    settings = base.model_copy(
        update={
            "database_url": with_database(base.database_url, f"panelflow_fuzz_{run_id}"),
            "amqp_prefix": f"fuzz{run_id}",
            "rate_limits_enabled": False,  # the fuzzer is one client sending thousands of calls
            "env": "development",  # a throwaway database: the development encryption keys do
        }
    )
    workdir = Path(tempfile.mkdtemp(prefix="panelflow-fuzz-"))
    await ensure_database(settings.database_url)
    api: ApiProcess | None = None
    try:
        conn = await connect(settings)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        pool = await create_pool(settings)
        try:
            key = await seed(pool)
        finally:
            await pool.close()
        api = await ApiProcess(settings, workdir / "api.log").started()
        summary = await asyncio.to_thread(
            run, Target(api.url, key), cases=args.cases, seed=args.seed, workdir=workdir, max_time=args.max_time
        )
    finally:
        if api is not None:
            api.stop()
        await delete_amqp_names(settings)
        await drop_database(settings.database_url)
    summary["api_log"] = str(workdir / "api.log")
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
