"""The action registry: every module of ACTION_MODULES is loaded at start, and one that is missing stops it."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.api.app import create_app
from shared.ingress import registry
from shared.settings import Settings


def test_every_action_module_loads() -> None:
    actions = registry.load_actions()
    assert {"services", "add", "status", "cancel", "webhook.add"} <= set(actions)


def test_a_missing_action_module_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "ACTION_MODULES", (*registry.ACTION_MODULES, "shared.ingress.actions_refil"))
    with pytest.raises(registry.MissingActionModule, match=r"'shared\.ingress\.actions_refil' not found"):
        registry.load_actions()


def test_a_missing_action_package_is_an_error_naming_the_module() -> None:
    with pytest.raises(registry.MissingActionModule, match=r"'shared\.ingres\.actions_read' not found"):
        registry.load_actions(["shared.ingres.actions_read"])


def test_the_api_does_not_start_with_a_missing_action_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "ACTION_MODULES", ("shared.ingress.actions_read", "shared.ingress.actions_typo"))
    with pytest.raises(registry.MissingActionModule, match="actions_typo"):
        create_app(Settings())


def test_an_action_module_that_fails_to_import_is_not_reported_as_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_actions.py").write_text("import no_such_dependency_of_an_action_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as caught:
        registry.load_actions(["broken_actions"])
    assert caught.type is ModuleNotFoundError
    assert caught.value.name == "no_such_dependency_of_an_action_module"
