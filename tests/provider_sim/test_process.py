"""`python -m services.provider_sim` runs as its own process, configured by PANELFLOW_SIM_* settings."""

from pathlib import Path

from shared.settings import Settings
from tests.support.sim import SimProcess


async def test_runs_as_a_process(base_settings: Settings, logs_dir: Path) -> None:
    sim = await SimProcess(base_settings, logs_dir / "sim.log", sim_instant=True, sim_key="proc-key").started()
    try:
        assert sim.control.key == "proc-key"
        status, body = await sim.control.call("add", service=1, link="https://x.test/p", quantity=100)
        assert status == 200
        assert isinstance(body["order"], int)
        _, report = await sim.control.call("status", order=body["order"])
        assert report["status"] == "Completed"  # instant mode came through the environment
    finally:
        assert sim.stop() == 0
    assert "sim_starting" in sim.log_text()
