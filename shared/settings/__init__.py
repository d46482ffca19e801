"""All configuration of every panelflow process, read once from `PANELFLOW_*` environment variables.

Build it in `__main__` (or a test) and pass it down; nothing reads the environment anywhere else.
Each value comes from, first to last: the environment; a `.env` file in the working directory (read when present);
the default. The settings are grouped by what they concern, one module per group; every field says what it means
(`shared/settings/field.py`), and docs/configuration.md is generated from them (`scripts/settings_table.py`).
"""

from __future__ import annotations

from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings.accounts import Accounts
from shared.settings.api import Api
from shared.settings.broker import Broker
from shared.settings.database import Database
from shared.settings.development import LocalDemo, Simulator
from shared.settings.mode import ModeAndKeys
from shared.settings.observability import Observability
from shared.settings.outbox import Outbox
from shared.settings.rate_limits import RateLimits
from shared.settings.upstream import Upstream
from shared.settings.webhooks import WebhookDelivery, WebhookPolicy
from shared.settings.worker import Worker

# In the order docs/configuration.md lists them.
GROUPS: tuple[type[BaseModel], ...] = (
    ModeAndKeys,
    Database,
    Broker,
    Api,
    RateLimits,
    Outbox,
    Accounts,
    Upstream,
    Worker,
    WebhookPolicy,
    WebhookDelivery,
    Observability,
    Simulator,
    LocalDemo,
)


class Settings(  # the groups in reverse: pydantic lists the fields of the last base first
    LocalDemo,
    Simulator,
    Observability,
    WebhookDelivery,
    WebhookPolicy,
    Worker,
    Upstream,
    Accounts,
    Outbox,
    RateLimits,
    Api,
    Broker,
    Database,
    ModeAndKeys,
    BaseSettings,
):
    # Environment variables win over a `.env` file in the working directory (read when present), which wins over
    # the defaults.
    model_config = SettingsConfigDict(
        env_prefix="PANELFLOW_", extra="ignore", env_file=".env", env_file_encoding="utf-8"
    )

    def amqp_name(self, name: str) -> str:
        return f"{self.amqp_prefix}.{name}"
