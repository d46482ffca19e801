"""The layering and the module sizes the codebase keeps, checked on the source (ast), so a change that breaks
them fails here rather than in a review.

- The lower layers import nothing of ours above them: `shared.errors` and `shared.settings` nothing of ours but
  themselves; the domain only the domain and the error hierarchy, and nothing outside the standard library (it is pure:
  no database, broker or HTTP); `shared.observability` only itself and `shared.settings` (callers hand it plain
  values: a state name, a kind's value, the set of known labels).
- The plumbing beside them (`shared.net`, `shared.logging`, `shared.sentry`, `shared.crypto`) and the upstream
  client (`shared.upstream`: the API v2 contract, not the worker that calls it) import no code of their callers.
- The process kit's machinery (`shared.kit`: the ops server, readiness, the supervisor, periodic loops) knows no
  dependency of a process: the checks of the database, the broker, the schema are handed in by the process.
- No module of `shared/` or `services/` is over `MAX_LINES` lines: split it by what it holds before that.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Top-level packages and modules that are ours: an import of one of them is an import "of ours".
OURS = frozenset(
    path.name if path.is_dir() else path.stem
    for path in ROOT.iterdir()
    if (path.is_dir() and (path / "__init__.py").exists()) or (path.suffix == ".py")
)

MAX_LINES = 400


@dataclass(frozen=True)
class Layer:
    package: str  # a dotted module or package
    may_import: tuple[str, ...]  # what of ours it may import (each a module or package, with what is under it)
    stdlib_only: bool = False  # no third-party import either


LAYERS = (
    Layer("shared.errors", ("shared.errors",)),
    Layer("shared.settings", ("shared.settings",)),
    Layer("shared.domain", ("shared.domain", "shared.errors"), stdlib_only=True),
    Layer("shared.observability", ("shared.observability", "shared.settings")),
    # Plumbing beside them: each takes what it needs as arguments, never the code that calls it.
    Layer("shared.net", ("shared.net",)),
    Layer("shared.logging", ("shared.settings",)),
    Layer("shared.sentry", ("shared.settings",)),
    Layer("shared.crypto", ("shared.crypto", "shared.settings")),
    # The upstream client knows the API v2 contract (the domain's order types and bounds), not the worker.
    Layer(
        "shared.upstream",
        ("shared.upstream", "shared.domain", "shared.errors", "shared.net", "shared.observability", "shared.settings"),
    ),
    # The ops server and what it runs: no messaging, no database, no ingress (readiness checks come as callables).
    Layer(
        "shared.kit.ops_server",
        ("shared.kit.multiprocess_metrics", "shared.kit.readiness", "shared.kit.supervisor", "shared.observability"),
    ),
    Layer("shared.kit.readiness", ("shared.kit.supervisor", "shared.observability")),
    Layer("shared.kit.multiprocess_metrics", ("shared.observability",)),
    Layer("shared.kit.supervisor", ("shared.observability",)),
    Layer("shared.kit.periodic", ("shared.kit.supervisor", "shared.observability")),
    # The data layer and the broker's plumbing sit under every process and loop: they may use the kit's core (the
    # readiness contract, the supervisor, periodic loops), never the kit's process assembly (shared.kit.process,
    # shared.kit.sampling, which use them) nor the ingress, worker, webhooks or services.
    Layer(
        "shared.db",
        (
            "shared.db",
            "shared.domain",
            "shared.errors",
            "shared.kit.readiness",
            "shared.observability",
            "shared.settings",
        ),
    ),
    Layer(
        "shared.messaging",
        (
            "shared.messaging",
            "shared.db",
            "shared.domain",
            "shared.errors",
            "shared.failpoints",
            "shared.kit.periodic",
            "shared.kit.readiness",
            "shared.kit.supervisor",
            "shared.logging",
            "shared.observability",
            "shared.settings",
        ),
    ),
)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(package: str) -> list[Path]:
    base = ROOT.joinpath(*package.split("."))
    if base.is_dir():
        return sorted(base.rglob("*.py"))
    return [base.with_suffix(".py")]


def imports_in(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in `module`'s source, wherever it is (functions, TYPE_CHECKING blocks
    too); `from a.b import c` gives `a.b.c`, relative imports are resolved against the module's package."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return sorted(found)


def upward(layer: Layer, imports: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The imports `layer` may not make."""
    wrong = []
    for line, name in imports:
        top = name.partition(".")[0]
        if top in OURS:
            if not any(_within(name, allowed) for allowed in layer.may_import):
                wrong.append((line, name))
        elif layer.stdlib_only and top not in sys.stdlib_module_names and top != "__future__":
            wrong.append((line, name))
    return wrong


def violations(layer: Layer) -> list[str]:
    found = []
    for path in _sources(layer.package):
        imports = imports_in(path.read_text(), _module_name(path), is_package=path.name == "__init__.py")
        found += [f"{path.relative_to(ROOT)}:{line} imports {name}" for line, name in upward(layer, imports)]
    return found


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.package)
def test_lower_layers_import_nothing_above_them(layer: Layer) -> None:
    assert all(path.exists() for path in _sources(layer.package)), layer.package
    assert violations(layer) == []


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for top in ("shared", "services")
        for path in (ROOT / top).rglob("*.py")
    }
    assert len(sizes) > 100  # the walk found the code
    assert {path: lines for path, lines in sorted(sizes.items()) if lines > MAX_LINES} == {}


def test_the_import_reader_sees_every_form_of_import() -> None:
    # The checks are only as good as the reader: every form of an import of ours is found, relative ones resolved.
    source = (
        "from __future__ import annotations\n"
        "import json, shared.db.pool\n"
        "from shared import messaging\n"
        "from . import metrics\n"
        "from ..upstream.breaker import BreakerState\n"
        "if TYPE_CHECKING:\n"
        "    import aiohttp\n"
        "def later():\n"
        "    from shared.domain.events import EventType\n"
    )
    imports = imports_in(source, "shared.observability.sample")
    assert [name for _, name in imports] == [
        "__future__.annotations",
        "json",
        "shared.db.pool",
        "shared.messaging",
        "shared.observability.metrics",
        "shared.upstream.breaker.BreakerState",
        "aiohttp",
        "shared.domain.events.EventType",
    ]
    observability = next(layer for layer in LAYERS if layer.package == "shared.observability")
    assert [name for _, name in upward(observability, imports)] == [
        "shared.db.pool",
        "shared.messaging",
        "shared.upstream.breaker.BreakerState",
        "shared.domain.events.EventType",
    ]
    domain = Layer("shared.domain", ("shared.domain", "shared.errors"), stdlib_only=True)
    assert [name for _, name in upward(domain, imports)] == [
        "shared.db.pool",
        "shared.messaging",
        "shared.observability.metrics",
        "shared.upstream.breaker.BreakerState",
        "aiohttp",
    ]
    assert imports_in("from .events import EventType\n", "shared.domain", is_package=True) == [
        (1, "shared.domain.events.EventType")
    ]
