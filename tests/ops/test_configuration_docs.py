"""docs/configuration.md is what scripts/settings_table.py generates from shared/settings/: every setting listed
with its meaning, type, unit, default and the processes that read it (found in the code by
scripts/settings_readers.py, whose findings are checked here against facts of the code)."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from types import ModuleType

import pytest

from shared.settings import GROUPS, Settings
from shared.settings.field import TYPE_KEY, UNIT_KEY
from tests.support.processes import ROOT

# A name ending like this is a quantity in this unit.
UNIT_BY_SUFFIX = {
    "_s": "seconds",
    "_bytes": "bytes",
    "_per_min": "calls per minute",
    "_per_s": "requests per second",
    "_days": "days",
    "_hours": "hours",
    "_pct": "percent",
}


def _load_readers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_readers", ROOT / "scripts" / "settings_readers.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["settings_readers"] = module
    spec.loader.exec_module(module)
    return module


settings_readers = _load_readers()


@pytest.fixture(scope="module")
def readers() -> dict[str, list[str]]:
    found: dict[str, list[str]] = settings_readers.readers(set(Settings.model_fields))
    return found


def test_configuration_docs_are_generated_from_the_settings() -> None:
    generated = subprocess.run(
        [sys.executable, "scripts/settings_table.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    documented = (ROOT / "docs" / "configuration.md").read_text()
    assert documented == generated, (
        "docs/configuration.md is out of date: .venv/bin/python scripts/settings_table.py > docs/configuration.md"
    )


def test_every_setting_has_a_meaning_a_type_and_a_unit_where_it_has_one() -> None:
    lacking = []
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if not (info.description or "").strip() or not str(extra.get(TYPE_KEY, "")).strip() or UNIT_KEY not in extra:
            lacking.append(name)
            continue
        suffixes = sorted(UNIT_BY_SUFFIX, key=len, reverse=True)  # `_per_s` before `_s`
        unit = next((UNIT_BY_SUFFIX[s] for s in suffixes if name.endswith(s)), None)
        if unit is not None and extra[UNIT_KEY] != unit:
            lacking.append(f"{name} (unit {extra[UNIT_KEY]!r}, its name says {unit!r})")
    assert not lacking, (
        "declare these with shared.settings.field.setting(default, meaning=..., type=..., unit=...): "
        + ", ".join(lacking)
    )


def test_every_setting_is_in_exactly_one_group() -> None:
    grouped = [name for group in GROUPS for name in group.model_fields]
    assert sorted(grouped) == sorted(Settings.model_fields), "a setting outside shared.settings.GROUPS, or in two"
    for group in GROUPS:
        heading = (group.__doc__ or "").strip().partition("\n")[0]
        assert heading, f"{group.__name__}: its docstring's first line is the table's heading"
        internal = re.search(r"\bH\d+\b|#\d|issue|owned by|helper|shared/|services/|\.py\b", heading, re.IGNORECASE)
        assert internal is None, f"{group.__name__}: a heading in an operator's words, no internal label"


def test_every_setting_is_read_by_some_process(readers: dict[str, list[str]]) -> None:
    unread = sorted(name for name, processes in readers.items() if not processes)
    assert not unread, f"no process reads {unread}: remove them, or read them where they are meant to act"


def test_the_processes_found_are_those_of_the_code(readers: dict[str, list[str]]) -> None:
    # Each case is a fact of the code, checked by reading it (the module and the reason are named).
    assert readers["worker_poll_claim"] == ["worker"]  # shared/worker/polling.py only
    assert readers["sim_seed"] == ["provider-sim"]  # services/provider_sim/app.py only
    assert readers["relay_batch"] == ["api", "relay"]  # OutboxRelay: in the api, and standalone
    # The api reaches its action modules by name (importlib over ingress/registry.py's ACTION_MODULES) ...
    assert "api" in readers["refills_per_order_max"]
    # ... the command line its command groups (shared/cli/main.py's GROUPS): `services sync`.
    assert readers["catalog_default_markup_pct"] == ["cli"]
    # `settings.amqp_name(...)` reads amqp_prefix (a method of Settings).
    assert {"api", "worker", "webhooks"} <= set(readers["amqp_prefix"])
    # Each process checks at start only the keys it names (require_keys' table is not followed).
    assert readers["webhook_secret_key"] == ["api", "webhooks", "cli"]
    assert readers["provider_key_encryption_key"] == ["worker", "cli"]
    # The api's own cleanup contexts read relay_enabled; nothing else does.
    assert readers["relay_enabled"] == ["api"]
    # Only the local stack and `panelflow demo seed` know the demo receiver.
    assert readers["demo_webhook_port"] == ["cli", "set-up"]


def test_every_runnable_module_is_a_known_process_or_none() -> None:
    starts = {module for units in settings_readers.entry_points().values() for module, _ in units}
    unknown = settings_readers.runnable_modules() - starts - set(settings_readers.NOT_PROCESSES)
    assert not unknown, (
        f"{sorted(unknown)} can be run: name the process in scripts/settings_readers.py (EXTRA_ENTRIES), or list "
        "it in NOT_PROCESSES if it reads no setting"
    )


def test_the_units_the_search_skips_exist() -> None:
    for module, name in settings_readers.OPAQUE:
        path = ROOT / (module.replace(".", "/") + ".py")
        assert path.exists(), f"{module} is gone: remove it from OPAQUE"
        names = {target.id for node in ast.parse(path.read_text()).body if isinstance(node, ast.Assign)
                 for target in node.targets if isinstance(target, ast.Name)}  # fmt: skip
        assert name in names, f"{module}.{name} is gone: remove it from OPAQUE"
