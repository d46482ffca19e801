"""Reading a real py-spy flame graph (bench/flamegraph.py): self time per function, package and system calls."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.flamegraph import summary

BUSY = """
import time

def inner():
    return sum(range(20_000))

def outer():
    inner()
    sum(range(20_000))  # as much time in outer itself

end = time.monotonic() + 10
while time.monotonic() < end:
    outer()
"""


def test_self_time_of_a_real_recording(tmp_path: Path) -> None:
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        pytest.skip("py-spy is not installed (dev dependencies)")
    script = tmp_path / "busy.py"
    script.write_text(BUSY)
    svg = tmp_path / "busy.svg"
    busy = subprocess.Popen([sys.executable, str(script)])
    try:
        subprocess.run(
            [str(py_spy), "record", "--pid", str(busy.pid), "--duration", "2", "--rate", "200", "--nonblocking",
             "--format", "flamegraph", "--output", str(svg)],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
    finally:
        busy.kill()
        busy.wait()
    found = summary(svg)
    shares = {name.split(" (")[0]: share for name, share in found["functions"]}
    assert found["samples"] > 100
    assert abs(shares["inner"] - shares["outer"]) < 0.2, shares  # each about half: self time, not inclusive
    assert shares["inner"] + shares["outer"] > 0.8, shares
    assert shares.get("<module>", 0) < 0.1, shares
