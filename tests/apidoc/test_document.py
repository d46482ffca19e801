"""The OpenAPI document: valid 3.1, committed as generated, and true to the code's tables and validation."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from shared.apidoc import parameters
from shared.apidoc.answers import errors_by_status
from shared.apidoc.document import Undescribed, build, render
from shared.domain import order_types
from shared.domain.events import SUBSCRIBER_EVENTS
from shared.domain.order_types import ServiceTerms, draft_order
from shared.errors import MissingParameter
from shared.ingress import registry
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "openapi.json"


def test_the_committed_document_is_the_generated_one() -> None:
    generated = subprocess.run(
        [sys.executable, "scripts/openapi_document.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PANELFLOW_BATCH_IDS_MAX": "7"},  # the environment must not leak in
    ).stdout
    assert generated == COMMITTED.read_text(), (
        "docs/openapi.json is stale: .venv/bin/python scripts/openapi_document.py > docs/openapi.json"
    )


def test_the_document_is_valid_openapi_3_1() -> None:
    document = json.loads(COMMITTED.read_text())
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_action_and_order_type_has_its_own_schema() -> None:
    document = build(Settings.model_construct())
    schemas = document["components"]["schemas"]
    mapping = schemas["ApiRequestForm"]["discriminator"]["mapping"]
    assert set(mapping) == set(registry.load_actions())
    add_types = {schemas[r["$ref"].rsplit("/", 1)[1]]["title"] for r in schemas["AddForm"]["anyOf"]}
    assert add_types == {f"add: {t}" for t in order_types.ORDER_TYPES}
    assert set(document["webhooks"]) == {str(e) for e in SUBSCRIBER_EVENTS}
    statuses = set(document["paths"]["/api/v2"]["post"]["responses"])
    assert statuses == {"200"} | {str(s) for s in errors_by_status()}
    assert {"400", "401", "403", "409", "413", "429", "503"} <= statuses


def test_an_action_the_generator_does_not_describe_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    async def handler(ctx: registry.ActionContext) -> object:
        return {}

    registry.load_actions()
    monkeypatch.setitem(registry.ACTIONS, "orders.export", handler)
    with pytest.raises(Undescribed, match=r"orders\.export"):
        build(Settings.model_construct())


def test_an_order_type_the_generator_does_not_describe_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(order_types.BUILDERS, "Story Views", order_types.BUILDERS["Default"])
    with pytest.raises(Undescribed, match="Story Views"):
        build(Settings.model_construct())


def test_an_event_type_without_a_payload_schema_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.apidoc import answers

    monkeypatch.delitem(answers.EVENT_DATA, SUBSCRIBER_EVENTS[0])
    with pytest.raises(Undescribed, match=str(SUBSCRIBER_EVENTS[0]).replace(".", r"\.")):
        build(Settings.model_construct())


# --- the order-type table says what draft_order really requires --------------------------------------------------

SAMPLES = {
    "link": "https://example.com/p/1",
    "text": "someone",
    "lines": "first\nsecond",
    "count": "5",
    "count0": "0",
    "delay": "30",
    "date": "31/12/2030",
}


def _terms(order_type: str) -> ServiceTerms:
    return ServiceTerms(id=1, type=order_type, rate=Decimal("1"), min_quantity=1, max_quantity=1000, dripfeed=True)


def _sample(order_type: str, *, optional: bool) -> dict[str, str]:
    doc = parameters.ORDER_TYPES[order_type]
    return {p.name: SAMPLES[p.kind] for p in doc.params if p.required or optional}


@pytest.mark.parametrize("order_type", list(order_types.ORDER_TYPES))
def test_the_documented_parameters_of_each_type_are_what_add_requires(order_type: str) -> None:
    required = _sample(order_type, optional=False)
    draft_order(required, _terms(order_type))  # the required ones suffice
    draft_order(_sample(order_type, optional=True), _terms(order_type))  # the optional ones are accepted
    for name in required:
        without = {k: v for k, v in required.items() if k != name}
        with pytest.raises(MissingParameter, match=f": {name}$"):
            draft_order(without, _terms(order_type))


@pytest.mark.parametrize("order_type", list(order_types.ORDER_TYPES))
def test_parameters_not_documented_for_a_type_change_nothing(order_type: str) -> None:
    documented = {p.name for p in parameters.ORDER_TYPES[order_type].params}
    base = _sample(order_type, optional=True)
    others = {name: "7" for name in order_types.ORDER_PARAMS if name not in documented and name != "service"}
    assert draft_order({**base, **others}, _terms(order_type)).params == draft_order(base, _terms(order_type)).params


def test_render_is_stable() -> None:
    document = build(Settings.model_construct())
    assert render(document) == render(json.loads(render(document)))


def test_schema_titles_are_unique() -> None:
    # Client generators name their models after the titles: two alike and one of the models goes missing.
    titles = [s["title"] for s in build(Settings.model_construct())["components"]["schemas"].values() if "title" in s]
    assert len(titles) == len(set(titles))


def test_webhooks_are_signed_not_keyed() -> None:
    document = build(Settings.model_construct())
    for hook in document["webhooks"].values():
        assert hook["post"]["security"] == []
        assert {p["name"] for p in hook["post"]["parameters"]} == {
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        }
