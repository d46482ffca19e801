"""`make run`'s stack, run the way the Makefile runs it (migrate, demo seed, `python -m shared.cli.stack run`) on a
database and ports of its own: the demo order goes Pending → Completed against the simulator and the example
receiver prints the signed deliveries of its status changes; SIGTERM stops every process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.cli.conftest import run_cli
from tests.support.isolation import delete_amqp_names
from tests.support.processes import free_port, pid_alive, settings_env


@pytest.fixture
async def stack_settings(fresh_settings: Settings) -> AsyncIterator[Settings]:
    own = fresh_settings.model_copy(
        update={
            "amqp_prefix": f"{fresh_settings.amqp_prefix}stack",
            "api_port": free_port(),
            "sim_port": free_port(),
            "demo_webhook_port": free_port(),
            "metrics_port_worker": 0,
            "metrics_port_webhooks": 0,
            "metrics_port_sim": 0,
            "sim_pending_s": 1.0,
            "sim_completion_s": 2.0,
            "worker_poll_min_s": 0.3,
            "worker_poll_idle_s": 0.1,
            "relay_poll_s": 0.2,
            "webhook_poll_s": 0.1,
            "log_format": "json",
        }
    )
    yield own
    await delete_amqp_names(own)


def wait_for(path: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        if found := re.search(pattern, text, re.MULTILINE):
            return found
        assert proc.poll() is None, text[-4000:]
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} not in the stack's output:\n{path.read_text(errors='replace')[-4000:]}")


def test_make_run_demo_order_goes_to_completed_and_the_receiver_verifies_its_webhooks(
    stack_settings: Settings, tmp_path: Path
) -> None:
    assert not stack_settings.webhooks_allow_http  # the stack relaxes it for itself, the settings do not
    assert run_cli(stack_settings, "migrate").code == 0
    run = tmp_path / ".run"
    seed = run_cli(stack_settings, "demo", "seed", "--key-file", str(run / "demo-key"))
    assert seed.code == 0, seed
    (run / "demo.env").write_text(seed.out)
    demo = dict(line.split("=", 1) for line in seed.out.splitlines())

    out = tmp_path / "stack.out"
    env = settings_env(stack_settings)
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.cli.stack", "run"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(out, rf"panelflow is running: http://127\.0\.0\.1:{stack_settings.api_port}/api/v2", proc)
        assert f"curl -s http://127.0.0.1:{stack_settings.api_port}/api/v2 -d key={demo['PANELFLOW_DEMO_KEY']}" in (
            out.read_text()
        )
        assert demo["PANELFLOW_DEMO_WEBHOOK_SECRET"] not in out.read_text()  # the banner never shows the secret
        order = (wait_for(out, r"^stack +\| demo order (\d+) placed", proc))[1]
        wait_for(out, rf"^stack +\| demo order {order}: Completed", proc)
        wait_for(out, rf'^receiver +\| verified order\.completed \S+: .*"order": {order}\b', proc)
        text = out.read_text()
        statuses = re.findall(rf"^stack +\| demo order {order}: (\w[\w ]*) \(", text, re.MULTILINE)
        assert statuses[0] == "Pending", text[-4000:]
        assert statuses[-1] == "Completed", text[-4000:]
        assert re.search(
            rf'^receiver +\| verified order\.status_changed \S+: .*"order": {order}, .*"status": "Completed"',
            text,
            re.MULTILINE,
        ), text[-4000:]
        assert (tmp_path / ".run" / "receiver.log").read_text().count("verified order.completed") == 1
        # The webhook of the move to In progress carries what `status` answered (nothing delivered yet), not null.
        quantity = re.search(rf"^stack +\| demo order {order}: Pending \(charge \S+, remains (\d+)\)", text, re.M)
        assert quantity, text[-4000:]
        bodies = re.findall(r"^receiver +\| verified order\.status_changed \S+: (\{.*\})$", text, re.MULTILINE)
        started = [b for b in map(json.loads, bodies) if b["order"] == int(order) and b["status"] == "In progress"]
        assert len(started) == 1, text[-4000:]
        assert (started[0]["remains"], started[0]["start_count"]) == (quantity[1], "0"), started
        pids = {p.stem: int(p.read_text()) for p in run.glob("*.pid")}
        assert set(pids) == {"api", "worker", "webhooks", "provider-sim", "receiver"}
        # The receiver got the webhook secret from a file only we can read, not on its command line (`ps`).
        receiver_cmdline = Path(f"/proc/{pids['receiver']}/cmdline").read_bytes()
        assert demo["PANELFLOW_DEMO_WEBHOOK_SECRET"].encode() not in receiver_cmdline
        assert b"--secret-file" in receiver_cmdline
        assert (run / "receiver-secret").stat().st_mode & 0o077 == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=40)
    assert code == 0, out.read_text()[-4000:]
    assert not list(run.glob("*.pid"))
    assert [name for name, pid in pids.items() if pid_alive(pid)] == []


def test_a_process_killed_in_the_stack_is_restarted_and_the_others_keep_running(
    stack_settings: Settings, tmp_path: Path
) -> None:
    assert run_cli(stack_settings, "migrate").code == 0
    run = tmp_path / ".run"
    out = tmp_path / "stack.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.cli.stack", "run", "--no-banner", "--no-demo-order"],
            cwd=tmp_path,
            env=settings_env(stack_settings),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(out, r"^worker +\|.*worker_started", proc)
        before = {p.stem: int(p.read_text()) for p in run.glob("*.pid")}
        assert set(before) == {"api", "worker", "webhooks", "provider-sim"}

        os.kill(before["worker"], signal.SIGKILL)
        wait_for(out, r"^stack +\| worker exited with status -9: restarting it in", proc)
        restarted = int(wait_for(out, r"^stack +\| worker restarted \(pid (\d+)\)", proc)[1])
        wait_for(out, r"^worker +\|.*worker_started(?s:.*)^worker +\|.*worker_started", proc)  # the new one is up
        after = {p.stem: int(p.read_text()) for p in run.glob("*.pid")}
        assert after["worker"] == restarted != before["worker"]
        assert pid_alive(restarted)
        assert {k: v for k, v in after.items() if k != "worker"} == {k: v for k, v in before.items() if k != "worker"}
        assert all(pid_alive(pid) for name, pid in before.items() if name != "worker")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=40)
    assert code == 0, out.read_text()[-4000:]
    assert [name for name, pid in after.items() if pid_alive(pid)] == []


def test_a_process_that_keeps_crashing_at_start_makes_the_stack_give_up_saying_so(
    stack_settings: Settings, tmp_path: Path
) -> None:
    # In production the webhook key is required at start: the webhooks process (and the api) exit at once.
    env = {**settings_env(stack_settings), "PANELFLOW_ENV": "production"}
    env.pop("PANELFLOW_WEBHOOK_SECRET_KEY", None)
    out = tmp_path / "stack.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.cli.stack", "run", "--no-banner", "--no-demo-order"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    assert code == 1, text[-4000:]
    assert re.search(r"^stack +\| \S+ exited with status 1: restarting it in 0\.5 s", text, re.MULTILINE), text[-4000:]
    assert re.search(
        r"^stack +\| \S+ exited with status \d+, 5 times in a row within 10 s of starting: giving up",
        text,
        re.MULTILINE,
    ), text[-4000:]
    assert not list((tmp_path / ".run").glob("*.pid"))
