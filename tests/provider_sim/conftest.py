from collections.abc import AsyncIterator

import pytest

from shared.settings import Settings
from tests.support.sim import SimControl, running_sim


@pytest.fixture
async def sim(base_settings: Settings) -> AsyncIterator[SimControl]:
    """Pending for 1 s, In progress until 10 s: tests move its clock with `sim.advance`."""
    async with running_sim(base_settings, pending_s=1.0, completion_s=10.0) as control:
        yield control
