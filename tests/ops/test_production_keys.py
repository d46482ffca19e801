"""Outside development a process that needs an encryption key refuses to start without it (no silent dev key)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from shared.crypto.secretbox import (
    PROVIDER_KEY_SETTING,
    WEBHOOK_SECRET_KEY_SETTING,
    SecretBox,
    SecretBoxError,
    provider_key_box,
    webhook_secret_box,
)
from shared.settings import Settings
from tests.support.isolation import delete_amqp_names
from tests.support.processes import ManagedProcess, free_port, settings_env

# (module, the key it needs, its field, the field naming its ops port)
PROCESSES = [
    ("services.api", WEBHOOK_SECRET_KEY_SETTING, "webhook_secret_key", "api_port"),
    ("services.webhooks", WEBHOOK_SECRET_KEY_SETTING, "webhook_secret_key", "metrics_port_webhooks"),
    ("services.worker", PROVIDER_KEY_SETTING, "provider_key_encryption_key", "metrics_port_worker"),
]


def test_production_is_the_default_mode() -> None:
    assert Settings.model_fields["env"].default == "production"


def test_an_empty_key_is_refused_outside_development_and_is_the_development_key_in_it() -> None:
    production = Settings(env="production", webhook_secret_key=None, provider_key_encryption_key=None)
    for make, setting in ((webhook_secret_box, WEBHOOK_SECRET_KEY_SETTING), (provider_key_box, PROVIDER_KEY_SETTING)):
        with pytest.raises(SecretBoxError, match=f"{setting} is not set: it is required outside development"):
            make(production)
        development = production.model_copy(update={"env": "development"})
        assert make(development).decrypt(make(development).encrypt("s")) == "s"
    configured = SecretBox(SecretStr(Fernet.generate_key().decode()), setting=PROVIDER_KEY_SETTING)
    assert configured.decrypt(configured.encrypt("s")) == "s"


async def _exit_code(process: ManagedProcess, timeout: float = 30) -> int | None:
    for _ in range(int(timeout * 10)):
        if not process.alive():
            assert process.proc is not None
            return process.proc.returncode
        await asyncio.sleep(0.1)
    return None


@pytest.mark.parametrize(("module", "setting", "field", "port_field"), PROCESSES)
async def test_a_process_without_its_key_in_production_exits_with_the_reason_and_starts_with_it(
    settings: Settings, logs_dir: Path, module: str, setting: str, field: str, port_field: str
) -> None:
    production = settings.model_copy(
        update={
            "env": "production",
            "webhook_secret_key": None,
            "provider_key_encryption_key": None,
            # Names of its own: the started worker or dispatcher must not take other tests' messages.
            "amqp_prefix": f"{settings.amqp_prefix}p{uuid.uuid4().hex[:6]}",
        }
    )
    port = free_port()
    env = settings_env(production, **{port_field: port})
    refused = ManagedProcess(module, env, logs_dir / f"{module}-nokey.log").start()
    assert await _exit_code(refused) == 1, refused.log_text()
    text = refused.log_text()
    assert f"refusing to start: {setting} is not set: it is required outside development" in text, text
    assert "Traceback" not in text, text

    keyed = settings_env(production, **{port_field: port, field: SecretStr(Fernet.generate_key().decode())})
    started = ManagedProcess(module, keyed, logs_dir / f"{module}-key.log").start()
    try:
        await started.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        assert "secret_key_unset" not in started.log_text()
    finally:
        code = started.stop()
        await delete_amqp_names(production)
    assert code == 0, started.log_text()
