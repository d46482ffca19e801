"""requirements.lock carries a hash for every pinned package, pins everything pyproject.toml asks for, and is
installed with --require-hashes; the image's runtime part of it (scripts/lock_subset.py) keeps those hashes."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from types import ModuleType

import pytest

from tests.ops.deploy_files import DEPLOY, ROOT

LOCK = (ROOT / "requirements.lock").read_text()


def lock_subset() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_subset", ROOT / "scripts" / "lock_subset.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_pin_has_hashes_and_every_dependency_is_pinned() -> None:
    subset = lock_subset()
    locked = subset.entries(LOCK)
    assert len(locked) == len(re.findall(r"(?m)^[A-Za-z0-9][^\s=]*==", LOCK))
    for name, lines in locked.items():
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", lines), f"{name} has no hash in requirements.lock"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    for requirement in wanted:
        name = subset.canonical(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0])
        assert name in locked, f"{requirement} (pyproject.toml) is not pinned in requirements.lock"


def test_the_venv_and_the_image_install_it_with_hashes_required() -> None:
    ensure = (ROOT / "scripts" / "ensure-venv.sh").read_text()
    assert "--require-hashes -r requirements.lock" in ensure
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "--require-hashes --no-deps -r /tmp/runtime.lock" in dockerfile
    assert "scripts/lock_subset.py subset requirements.lock" in dockerfile


def test_the_runtime_subset_keeps_the_locks_entries_with_their_hashes() -> None:
    subset = lock_subset()
    pins = subset.pins(LOCK).splitlines()
    assert "aiohttp==" + re.search(r"(?m)^aiohttp==(\S+)", LOCK).group(1) in pins  # type: ignore[union-attr]
    assert not any("hash" in line or "\\" in line for line in pins)
    report = {"install": [{"metadata": {"name": "panelflow"}}, {"metadata": {"name": "AIOHTTP"}},
                          {"metadata": {"name": "typing_extensions"}}]}  # fmt: skip
    chosen = subset.subset(LOCK, report)
    locked = subset.entries(LOCK)
    assert chosen == locked["aiohttp"] + locked["typing-extensions"]
    with pytest.raises(SystemExit, match="not pinned in the lock: left-pad"):
        subset.subset(LOCK, {"install": [{"metadata": {"name": "left-pad"}}]})
