"""One money path, checked on the source: the SQL that changes a balance, writes the ledger or records a
refund on an order lives in `shared/db/accounts.py`, but for placement's reservation (`shared/db/placement.py`,
one statement with the orders it places); and the api reaches the worker's refund path without importing
worker code (it lives in `shared/ordering/`)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_architecture import imports_in

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "shared"

# Inside one SQL string (no double quote in between: SQL here is always in double quotes): a balance
# assignment, a ledger insert, a refunded assignment.
MONEY_WRITES = (
    re.compile(r"update\s+accounts\b[^\"]*?\bset\b[^\"]*?(?<![\w.])balance\s*=", re.I),
    re.compile(r"insert\s+into\s+ledger\b", re.I),
    re.compile(r"update\s+orders\b[^\"]*?\bset\b[^\"]*?(?<![\w.])refunded\s*=", re.I),
)
ALLOWED = {"shared/db/accounts.py", "shared/db/placement.py"}


def money_writers(root: Path) -> set[str]:
    return {
        str(path.relative_to(root.parent))
        for path in root.rglob("*.py")
        if any(pattern.search(path.read_text()) for pattern in MONEY_WRITES)
    }


def test_the_patterns_find_each_kind_of_money_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "balance.py").write_text('Q = """\n  UPDATE accounts a\n  SET balance = a.balance + t.amount\n"""\n')
    (shared / "ledger.py").write_text('Q = "INSERT INTO ledger (account_id, kind) VALUES ($1, $2)"\n')
    (shared / "refunded.py").write_text("Q = \"UPDATE orders SET status = 'canceled', refunded = charge\"\n")
    (shared / "alert.py").write_text('Q = "UPDATE accounts SET low_balance_alerted_under = $2 WHERE balance < $2"\n')
    assert money_writers(shared) == {"shared/balance.py", "shared/ledger.py", "shared/refunded.py"}


def test_money_is_written_by_the_accounts_module_and_placement_only() -> None:
    assert money_writers(SHARED) == ALLOWED


def test_the_api_imports_no_worker_code() -> None:
    wrong = []
    for path in sorted((SHARED / "ingress").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        wrong += [f"{path.name}:{line} {name}" for line, name in imports_in(path.read_text(), module)
                  if name.startswith("shared.worker")]  # fmt: skip
    assert wrong == []
