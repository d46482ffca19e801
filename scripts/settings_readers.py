"""Which processes read each setting, found in the code (no hand-kept list): `readers()` maps a setting to the
processes whose code can read it.

Every process starts at an entry point (each `services/<name>/__main__.py`, the `panelflow` command of
pyproject.toml, and the few entries of `EXTRA_ENTRIES`). From there the search follows what the code names: a
top-level function or class reached is read whole (every method of a class), and so is every function and class it
names, through imports, aliases and re-exports, and through modules imported by name (`importlib.import_module` of
a listed module reaches all of it). A setting is read where the code takes an attribute of that name from a
`Settings` object as the code names them (`settings.x`, `self._settings.x`, `ctx.settings.x`, `app[SETTINGS].x`, a
local name bound to one of these or annotated `Settings`), or calls a method of `Settings` that reads it.
Annotations are not followed (naming a type is not running its code), nor the units of `OPAQUE`.

It errs towards more processes (a branch never taken still counts). It misses a read only through a name it does
not know for a `Settings` object (`self.cfg.x`): keep to these names.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shared", "services")

# Entry points that are not `services/<name>/__main__.py` nor a pyproject script: process name -> modules.
# A module missing from the tree is skipped (it may have moved to `services/`).
EXTRA_ENTRIES: dict[str, tuple[str, ...]] = {
    # `make run` / `make up` (the local stack and its demo) and scripts/ensure-services.sh's probe.
    "set-up": ("shared.cli.stack", "shared.cli.probe"),
}
# Modules runnable with `python -m` that are no process of panelflow's (they read no setting).
NOT_PROCESSES = ("shared.webhooks.receiver_example",)
# Units the search does not go through, each with the reason it would mislead.
OPAQUE: dict[Unit, str] = {
    ("shared.crypto.secretbox", "_BOXES"): "require_keys builds only the boxes its caller names (the caller's own code "
    "reaches the box it uses); through this table every process would seem to read both keys",
}
SETTINGS_MODULE = "shared.settings"
SCRIPT_NAMES = {"panelflow": "cli"}
# How the processes are listed (others after these, by name).
ORDER = ("api", "worker", "webhooks", "relay", "cli", "set-up", "provider-sim")

_SETTINGS_EXPR = re.compile(r"(^|\.)_?settings$|\[SETTINGS\]$")

Unit = tuple[str, str | None]  # (module, top-level name); None: the module's own top-level code


@dataclass
class _Module:
    name: str
    tree: ast.Module
    aliases: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # local name -> (module, symbol)
    units: dict[str | None, list[ast.AST]] = field(default_factory=dict)
    main_block: list[ast.stmt] = field(default_factory=list)
    decorated: set[str] = field(default_factory=set)
    imports_by_name: bool = False


def _module_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__name__" in ast.unparse(node.test) and "__main__" in ast.unparse(node.test)


class _Code:
    def __init__(self, setting_names: set[str]) -> None:
        self.names = setting_names
        files = _module_files()
        self.modules = {name: self._load(name, path, files) for name, path in files.items()}
        self.methods = self._settings_methods()
        self._scans: dict[tuple[Unit, bool], tuple[set[str], set[Unit], set[str]]] = {}

    def _settings_methods(self) -> dict[str, set[str]]:
        """Methods of the Settings classes -> the settings they read (`settings.amqp_name(...)` reads amqp_prefix)."""
        methods: dict[str, set[str]] = {}
        for name, module in self.modules.items():
            if name == SETTINGS_MODULE or name.startswith(SETTINGS_MODULE + "."):
                for cls in (n for n in module.tree.body if isinstance(n, ast.ClassDef)):
                    for method in cls.body:
                        if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                            methods[method.name] = {
                                node.attr
                                for node in ast.walk(method)
                                if isinstance(node, ast.Attribute)
                                and node.attr in self.names
                                and ast.unparse(node.value) == "self"
                            }
        return methods

    def _load(self, name: str, path: Path, files: dict[str, Path]) -> _Module:
        tree = ast.parse(path.read_text(), str(path))
        module = _Module(name, tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        module.aliases[alias.asname] = (alias.name, None)
                    else:
                        top = alias.name.split(".")[0]
                        module.aliases[top] = (top, None)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    module.aliases[alias.asname or alias.name] = (full, None) if full in files else (base, alias.name)
            elif isinstance(node, ast.Attribute) and node.attr == "import_module":
                module.imports_by_name = True
        top_level: list[ast.AST] = []
        for statement in tree.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                module.units[statement.name] = [statement]
                if statement.decorator_list:
                    module.decorated.add(statement.name)
            elif isinstance(statement, ast.Assign | ast.AnnAssign) and _assigned_names(statement):
                for target in _assigned_names(statement):
                    module.units.setdefault(target, []).append(statement)
            elif _is_main_guard(statement):
                module.main_block.append(statement)
            elif not isinstance(statement, ast.Import | ast.ImportFrom):
                top_level.append(statement)
        module.units[None] = top_level
        return module

    def resolve(self, module: str, symbol: str | None, depth: int = 0) -> Unit | None:
        """The unit `symbol` of `module` names, following re-exports; None outside our code."""
        if module not in self.modules:
            return None
        if symbol is None:
            return (module, None)
        found = self.modules[module]
        if symbol in found.units:
            return (module, symbol)
        if symbol in found.aliases and depth < 10:
            return self.resolve(*found.aliases[symbol], depth=depth + 1)
        return (module, None)

    def _target(self, module: _Module, node: ast.AST) -> Unit | None:
        if isinstance(node, ast.Name):
            if node.id in module.units and node.id is not None:
                return (module.name, node.id)
            if node.id in module.aliases:
                return self.resolve(*module.aliases[node.id])
            return None
        if isinstance(node, ast.Attribute):
            outer = self._target(module, node.value)
            if outer is not None and outer[1] is None:
                submodule = f"{outer[0]}.{node.attr}"
                return (submodule, None) if submodule in self.modules else self.resolve(outer[0], node.attr)
        return None

    def scan(self, module: _Module, nodes: list[ast.AST]) -> tuple[set[str], set[Unit], set[str]]:
        """(settings read, units named, modules imported by name) in `nodes`."""
        reads: set[str] = set()
        refs: set[Unit] = set()
        by_name: set[str] = set()
        bound = _settings_names(nodes)
        for node in _walk(nodes):
            if isinstance(node, ast.Attribute) and (node.attr in self.names or node.attr in self.methods):
                owner = ast.unparse(node.value)
                if _SETTINGS_EXPR.search(owner) or owner in bound:
                    reads |= self.methods.get(node.attr, {node.attr})
            if isinstance(node, ast.Name | ast.Attribute) and (target := self._target(module, node)) is not None:
                refs.add(target)
            if module.imports_by_name and isinstance(node, ast.Constant) and node.value in self.modules:
                by_name.add(str(node.value))
        return reads, refs, by_name

    def reached(self, starts: list[Unit], with_main: set[str]) -> dict[str, list[Unit]]:
        """Every setting read by the code reachable from `starts` (`with_main`: modules run as `__main__`), with
        the path to its first read found."""
        reads: dict[str, list[Unit]] = {}
        via: dict[Unit, Unit | None] = {}
        todo: list[tuple[Unit, Unit | None]] = [(start, None) for start in starts]
        while todo:
            unit, parent = todo.pop()
            if unit in via or unit[0] not in self.modules or unit in OPAQUE:
                continue
            via[unit] = parent
            module = self.modules[unit[0]]
            nodes = list(module.units.get(unit[1], []))
            named: list[Unit]
            if unit[1] is None:
                # Importing a module runs its top-level code, registers its decorated functions and imports what
                # its top level imports.
                if module.name in with_main:
                    nodes += module.main_block
                named = [(module.name, name) for name in module.decorated]
                named += [(imported, None) for imported in _top_level_imports(module)]
            else:
                named = [(module.name, None)]
            key = (unit, module.name in with_main)
            if key not in self._scans:
                self._scans[key] = self.scan(module, nodes)
            found, refs, by_name = self._scans[key]
            for name in found:
                reads.setdefault(name, _path(via, unit))
            named += refs
            for name in by_name:
                named += [(name, unit_name) for unit_name in self.modules[name].units]
            todo += [(target, unit) for target in named]
        return reads


def _path(via: dict[Unit, Unit | None], unit: Unit) -> list[Unit]:
    path = [unit]
    while (parent := via[path[-1]]) is not None:
        path.append(parent)
    return path[::-1]


def _assigned_names(statement: ast.Assign | ast.AnnAssign) -> list[str]:
    targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
    return [t.id for t in targets if isinstance(t, ast.Name)]


def _top_level_imports(module: _Module) -> Iterator[str]:
    """The modules the top level of `module` imports (importing a name runs its module, not the name)."""
    for statement in module.tree.body:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            for alias in statement.names:
                name = alias.asname or alias.name.split(".")[0]
                if name in module.aliases:
                    yield module.aliases[name][0]


def _walk(nodes: list[ast.AST]) -> Iterator[ast.AST]:
    """Every node below `nodes`, annotations left out."""
    todo = list(nodes)
    while todo:
        node = todo.pop()
        yield node
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns"):
                continue
            if isinstance(value, ast.AST):
                todo.append(value)
            elif isinstance(value, list):
                todo += [item for item in value if isinstance(item, ast.AST)]


def _settings_names(nodes: list[ast.AST]) -> set[str]:
    """Local names bound to a Settings object: `s = self.settings`, `local = local_webhook_settings(settings)`,
    or a parameter annotated `Settings`."""
    bound: set[str] = set()
    for node in _walk(nodes):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = node.value.func if isinstance(node.value, ast.Call) else node.value
            if _SETTINGS_EXPR.search(ast.unparse(value)) or ast.unparse(value) == "Settings":
                bound.add(node.targets[0].id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for arg in [*node.args.args, *node.args.kwonlyargs]:
                if arg.annotation is not None and ast.unparse(arg.annotation).strip("'\"") == "Settings":
                    bound.add(arg.arg)
    return bound


def entry_points() -> dict[str, list[Unit]]:
    """Process name -> where it starts."""
    files = _module_files()
    entries: dict[str, list[Unit]] = {}
    for path in sorted((ROOT / "services").glob("*/__main__.py")):
        entries[path.parent.name.replace("_", "-")] = [(f"services.{path.parent.name}.__main__", None)]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("scripts", {})
    for script, target in scripts.items():
        module, _, function = target.partition(":")
        entries[SCRIPT_NAMES.get(script, script)] = [(module, function or None)]
    for name, modules in EXTRA_ENTRIES.items():
        present = [(module, None) for module in modules if module in files]
        if present:
            entries.setdefault(name, []).extend(present)
    return entries


def runnable_modules() -> set[str]:
    """Modules of ours with an `if __name__ == "__main__":` block."""
    return {
        name
        for name, path in _module_files().items()
        if any(_is_main_guard(statement) for statement in ast.parse(path.read_text()).body)
    }


def read_paths(setting_names: set[str]) -> dict[str, dict[str, list[Unit]]]:
    """Setting -> process -> the chain of code from the process's start to a read of the setting."""
    code = _Code(setting_names)
    found: dict[str, dict[str, list[Unit]]] = {name: {} for name in setting_names}
    for process, starts in entry_points().items():
        with_main = {module for module, _ in starts}
        for name, path in code.reached(starts, with_main).items():
            found[name][process] = path
    return found


def readers(setting_names: set[str]) -> dict[str, list[str]]:
    """Setting -> the processes that read it, in `ORDER`."""

    def rank(process: str) -> tuple[int, str]:
        return (ORDER.index(process) if process in ORDER else len(ORDER), process)

    return {name: sorted(paths, key=rank) for name, paths in read_paths(setting_names).items()}
