"""How `panelflow` prints what it looks up: aligned columns for a person, one JSON object per line for a script.

Money stays exact in JSON (a string as the API answers it, "12.50", never a float); times are ISO 8601.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.domain.money import format_money


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format_money(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return format_money(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def emit(records: Sequence[Mapping[str, Any]], columns: Sequence[str], *, as_json: bool) -> None:
    """Print `records`: one JSON object per line, or a table of `columns` (headers in capitals) aligned in columns."""
    if as_json:
        for record in records:
            print(json.dumps({name: _plain(value) for name, value in record.items()}))
        return
    rows = [[name.upper() for name in columns]] + [[_cell(r.get(name)) for name in columns] for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def emit_one(record: Mapping[str, Any], *, as_json: bool) -> None:
    """One record: a JSON object, or `name  value` lines aligned on the values."""
    if as_json:
        print(json.dumps({name: _plain(value) for name, value in record.items()}))
        return
    width = max(len(name) for name in record)
    for name, value in record.items():
        print(f"{name.ljust(width)}  {_cell(value)}")
