"""`settings_env` hands children the settings exactly, secrets included (a masked secret would break them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pydantic import SecretStr

from shared.settings import Settings
from tests.support.processes import ROOT, settings_env

DUMP = (
    "from shared.settings import Settings; s = Settings(); "
    "print(s.webhook_secret_key.get_secret_value()); print(s.sentry_dsn.get_secret_value()); print(s.api_port)"
)


def test_every_secret_reaches_the_child_unmasked() -> None:
    settings = Settings(
        webhook_secret_key=SecretStr("k1,k2"), sentry_dsn=SecretStr("http://public@127.0.0.1:9/1"), api_port=8123
    )
    secret_fields = [n for n, f in Settings.model_fields.items() if f.annotation and "SecretStr" in str(f.annotation)]
    assert {"webhook_secret_key", "sentry_dsn"} <= set(secret_fields)
    env = settings_env(settings)
    assert "**********" not in env.values()
    out = subprocess.run([sys.executable, "-c", DUMP], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["k1,k2", "http://public@127.0.0.1:9/1", "8123"]


def test_secret_overrides_given_as_secretstr_or_text() -> None:
    settings = Settings()
    assert settings_env(settings, webhook_secret_key=SecretStr("a"))["PANELFLOW_WEBHOOK_SECRET_KEY"] == "a"
    assert settings_env(settings, webhook_secret_key="b")["PANELFLOW_WEBHOOK_SECRET_KEY"] == "b"
    assert "PANELFLOW_WEBHOOK_SECRET_KEY" not in settings_env(settings)  # unset stays unset


def test_a_dot_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PANELFLOW_API_PORT=8555\nPANELFLOW_CURRENCY=EUR\nOTHER_TOOL_SETTING=x\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANELFLOW_")}
    show = "from shared.settings import Settings; s = Settings(); print(s.api_port, s.currency)"
    read = subprocess.run([sys.executable, "-c", show], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert read.stdout.split() == ["8555", "EUR"]
    overridden = subprocess.run([sys.executable, "-c", show], cwd=tmp_path,
                                env={**env, "PYTHONPATH": str(ROOT), "PANELFLOW_CURRENCY": "GBP"},
                                capture_output=True, text=True, check=True)  # fmt: skip
    assert overridden.stdout.split() == ["8555", "GBP"]
    (tmp_path / "elsewhere").mkdir()
    without = subprocess.run(
        [sys.executable, "-c", show],
        cwd=tmp_path / "elsewhere",
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert without.stdout.split() == [str(Settings.model_fields["api_port"].default), "USD"]
