"""`panelflow ledger check`: every balance equals its ledger sum and is not negative."""

from __future__ import annotations

import argparse
import sys

from shared.cli.base import Subparsers, command, database, group
from shared.db.accounts import count_accounts, ledger_mismatches
from shared.settings import Settings


def register(commands: Subparsers) -> None:
    sub = group(commands, "ledger", "the append-only money ledger")
    command(sub, "check", "verify balance == ledger sum >= 0 for every account; exit 1 listing the others", _check)


async def _check(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as conn:
        mismatches = await ledger_mismatches(conn)
        accounts = await count_accounts(conn)
    if not mismatches:
        print(f"ledger ok: {accounts} accounts, every balance equals its ledger sum")
        return 0
    print(f"ledger MISMATCH in {len(mismatches)} of {accounts} accounts:", file=sys.stderr)
    for m in mismatches:
        print(f"account {m.account_id}: balance {m.balance} ledger sum {m.ledger_sum}")
    return 1
