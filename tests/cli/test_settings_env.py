"""`settings_env` hands children the settings exactly, secrets included (a masked secret would break them)."""

from __future__ import annotations

import subprocess
import sys

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
