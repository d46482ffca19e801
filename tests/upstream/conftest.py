from collections.abc import AsyncIterator

import pytest

from shared.settings import Settings
from tests.support.sim import SimControl, running_sim


@pytest.fixture
def client_settings(base_settings: Settings) -> Settings:
    """Short timeouts so that timeout tests take a second, not fifteen."""
    return base_settings.model_copy(
        update={
            "upstream_timeout_s": 0.6,
            "upstream_connect_timeout_s": 0.5,
            "upstream_breaker_failures": 3,
            "upstream_breaker_reset_s": 0.4,
            "upstream_concurrency": 4,
        }
    )


@pytest.fixture
async def sim(base_settings: Settings) -> AsyncIterator[SimControl]:
    async with running_sim(base_settings, pending_s=0.0, completion_s=0.2) as control:
        yield control
