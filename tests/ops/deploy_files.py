"""Helpers of the deploy-file tests: load the manifests, and what the code says they must agree with."""

from __future__ import annotations

import re
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import Counter, Gauge, Histogram, Info
from prometheus_client.metrics import MetricWrapperBase

from shared.observability import metrics
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SETTINGS_FIELDS = frozenset(Settings.model_fields)
METRIC_NAME = re.compile(r"\bpanelflow_[a-z0-9_]+\b")


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


DEMO = DEPLOY / "k8s-demo"


def k8s_objects(directory: Path = K8S) -> list[dict[str, Any]]:
    """The objects of one kustomization directory's own files (the default one: what production runs)."""
    objects = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            objects += load_all(path)
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def setting_of(env_name: str) -> str | None:
    """The Settings field an environment variable sets, or None when it sets none."""
    if not env_name.startswith("PANELFLOW_"):
        return None
    field = env_name.removeprefix("PANELFLOW_").lower()
    return field if field in SETTINGS_FIELDS else None


def module_runs(module: str) -> bool:
    """`python -m <module>` finds something to run."""
    for name in (module + ".__main__", module):  # a package's __main__, or a plain module
        try:
            if find_spec(name) is not None:
                return True
        except ModuleNotFoundError:  # the first, for a plain module: it is no package
            continue
    return False


BUILD_INFO_LABELS = frozenset({"process", "release"})


def defined_metrics() -> dict[str, frozenset[str]]:
    """Every series name metrics.py exposes (with the _total/_bucket/... suffixes), mapped to its label names."""
    names: dict[str, frozenset[str]] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        base = value._name
        labels = frozenset(value._labelnames)
        if isinstance(value, Counter):
            suffixes = ["_total"]
        elif isinstance(value, Histogram):
            suffixes = ["_bucket", "_sum", "_count"]
            labels |= {"le"}
        elif isinstance(value, Info):
            suffixes = ["_info"]
            # An Info's labels are the keys it is set with: metrics.set_build_info's for the build info.
            labels |= BUILD_INFO_LABELS if value is metrics.BUILD_INFO else frozenset()
        else:
            assert isinstance(value, Gauge)
            suffixes = [""]
        for suffix in suffixes:
            names[base + suffix] = labels
    return names


def metric_names_in(text: str) -> set[str]:
    return set(METRIC_NAME.findall(text))


def selector_labels(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names used in its `{...}` selector and in `by (...)` clauses after it) of an expression."""
    found = []
    for match in re.finditer(r"(panelflow_[a-z0-9_]+)\{([^}]*)\}", expr):
        labels = {part.split("=")[0].strip().rstrip("!~") for part in match.group(2).split(",") if part.strip()}
        found.append((match.group(1), labels))
    return found
