"""docs/configuration.md is what scripts/settings_table.py generates from shared/settings.py: every setting listed,
with its current default and meaning."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT


def test_configuration_docs_are_generated_from_the_settings() -> None:
    generated = subprocess.run(
        [sys.executable, "scripts/settings_table.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    documented = (ROOT / "docs" / "configuration.md").read_text()
    assert documented == generated, (
        "docs/configuration.md is out of date: .venv/bin/python scripts/settings_table.py > docs/configuration.md"
    )
