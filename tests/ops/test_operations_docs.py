"""The runbook's commands exist as written: every `panelflow …` command of docs/operations.md and
docs/configuration.md is one the command line accepts (group, command, options and their values), and every
Kubernetes object a `kubectl` line of docs/operations.md names is one deploy/k8s defines."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
import yaml

from shared.cli.main import build_parser
from shared.settings import Settings
from tests.support.processes import ROOT

DOCS = [ROOT / "docs" / "operations.md", ROOT / "docs" / "configuration.md"]
K8S = ROOT / "deploy" / "k8s"


def _code(text: str) -> list[str]:
    """Inline code spans and the lines of fenced blocks."""
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    spans = [" ".join(span.split()) for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", prose)]  # spans may wrap
    blocks = [line for block in re.findall(r"```\w*\n(.*?)```", text, flags=re.DOTALL) for line in block.splitlines()]
    return spans + blocks


def documented_commands() -> list[str]:
    found = []
    for doc in DOCS:
        for code in _code(doc.read_text()):
            code = code.split("#")[0]
            if "kubectl" in code:
                continue  # `kubectl -n panelflow …`: the namespace, not the command
            match = re.search(r"(?:^|\s)(panelflow\s+[a-z][a-z-]*(?:\s.*)?)$", code.strip())
            if match is None or "|" in match[1] or "<group>" in match[1]:
                continue  # a choice of several commands, or the generic shape
            found.append(match[1].strip())
    return sorted(set(found))


def _as_arguments(command: str, placeholders: dict[str, str]) -> list[str]:
    """The command with its placeholders filled: `ID`, `<id>`, `…` become a value (`placeholders` names those the
    parser checks, e.g. a file it reads); `[--x Y]` is used."""
    text = command.replace("[", " ").replace("]", " ").replace("…", " ").replace("...", "x")
    text = re.sub(r"<[^>]*>", "1", text)
    words = shlex.split(text)[1:]
    return [
        placeholders.get(word, "1") if re.fullmatch(r"[A-Z][A-Z_]*", word) and word != "-" else word for word in words
    ]


COMMANDS = documented_commands()


def test_the_runbook_names_commands() -> None:
    assert len(COMMANDS) > 30, COMMANDS
    assert "panelflow migrate status" in COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_the_command_line_accepts_the_documented_command(command: str, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("a-key-on-one-line\n")
    errors = io.StringIO()
    code: int | str | None = 0
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(_as_arguments(command, {"PATH": str(key_file)}))
    except SystemExit as exc:
        code = exc.code
    said = errors.getvalue()
    # A command named without its required options (in running text) is fine; anything else is not.
    assert code == 0 or "the following arguments are required" in said, f"{command!r}: {said.strip()}"


def _k8s_objects() -> list[dict]:
    docs = [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return [doc for doc in docs if "kind" in doc and "metadata" in doc]


def test_the_kubernetes_objects_the_runbook_names_exist() -> None:
    objects = _k8s_objects()
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    runbook = (ROOT / "docs" / "operations.md").read_text()
    named = [("Deployment", m) for m in re.findall(r"\bdeploy/(panelflow-[a-z-]+)", runbook)]
    named += [("ScaledObject", m) for m in re.findall(r"scaledobject (panelflow-[a-z-]+)", runbook)]
    named += [("Namespace", m) for m in re.findall(r"kubectl -n ([a-z-]+)", runbook)]
    assert len(named) > 5
    missing = sorted({n for n in named if n not in names})
    assert not missing, f"docs/operations.md names objects deploy/k8s does not define: {missing}"
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Deployment"]
    containers = {c["name"] for pod in pods for c in pod.get("initContainers", []) + pod["containers"]}
    logs_of = set(re.findall(r"logs <pod> -c (\w+)", runbook))
    assert logs_of
    assert logs_of <= containers


def test_the_configmap_sets_production_as_the_runbook_says() -> None:
    configmap = next(o for o in _k8s_objects() if o["kind"] == "ConfigMap")
    assert configmap["data"]["PANELFLOW_ENV"] == "production"
    assert set(configmap["metadata"]) <= {"name", "namespace", "labels", "annotations"}


def test_every_setting_the_operators_docs_name_exists() -> None:
    variables = {f"PANELFLOW_{name.upper()}" for name in Settings.model_fields}
    for doc in ("operations.md", "configuration.md", "lifecycle.md", "webhooks.md"):
        named = set(re.findall(r"PANELFLOW_[A-Z0-9_]+", (ROOT / "docs" / doc).read_text())) - {"PANELFLOW_NAME"}
        unknown = sorted(
            n for n in named if n not in variables and not (n.endswith("_") and any(v.startswith(n) for v in variables))
        )
        assert not unknown, f"docs/{doc} names settings that do not exist: {unknown}"
