"""The request side of the document: one schema per action (per order type for `add`), for form/query and JSON."""

from __future__ import annotations

from shared.apidoc import parameters
from shared.apidoc.answers import Schema, ref
from shared.apidoc.parameters import ActionDoc, Param, value_schema
from shared.auth.keys import ACTION_SCOPES
from shared.settings import Settings


def _camel(text: str) -> str:
    return "".join(word[0].upper() + word[1:] for word in text.split())


def _component(action: str, *, json_body: bool) -> str:
    name = _camel(action.replace(".", " ").replace("_", " "))
    return f"{name}{'Json' if json_body else 'Form'}"


def param_schema(p: Param, *, json_body: bool, settings: Settings) -> Schema:
    schema = value_schema(p.kind, json_body=json_body, settings=settings)
    more = schema.pop("description", "")
    return {**schema, "description": f"{p.description} {more}".strip()}


def _properties(params: tuple[Param, ...], *, json_body: bool, settings: Settings) -> dict[str, Schema]:
    return {p.name: param_schema(p, json_body=json_body, settings=settings) for p in params}


_KEY_PROPERTY: Schema = {"type": "string", "description": "The API key (or the `X-API-Key` header)."}


def _request(action: str, doc: ActionDoc, extra: tuple[Param, ...], *, json_body: bool, settings: Settings) -> Schema:
    params = doc.params + extra
    schema: Schema = {
        "type": "object",
        "properties": {
            "action": {"const": action},
            "key": _KEY_PROPERTY,
            **_properties(params, json_body=json_body, settings=settings),
        },
        "required": ["action", *(p.name for p in params if p.required)],
    }
    if doc.one_of:
        schema["oneOf" if doc.exclusive else "anyOf"] = [{"required": list(group)} for group in doc.one_of]
    return schema


def request_schemas(settings: Settings, *, json_body: bool) -> dict[str, Schema]:
    """Component name -> schema: one per action, and for `add` one per order type."""
    schemas: dict[str, Schema] = {}
    variants: list[Schema] = []
    suffix = " (JSON)" if json_body else ""  # titles name generated clients' models: one per variant
    for action, doc in parameters.ACTIONS.items():
        name = _component(action, json_body=json_body)
        scope = ACTION_SCOPES.get(action, "?")
        if action != "add":
            schemas[name] = {
                "title": f"{action}{suffix}",
                "description": f"{doc.summary} Key scope: `{scope}`.",
                **_request(action, doc, (), json_body=json_body, settings=settings),
            }
            variants.append(ref(name))
            continue
        types: list[Schema] = []
        for order_type, type_doc in parameters.ORDER_TYPES.items():
            type_name = f"{name}{_camel(order_type)}"
            notes = f" {type_doc.notes}" if type_doc.notes else ""
            schemas[type_name] = {
                "title": f"add: {order_type}{suffix}",
                "description": f"`add` for a service of type **{order_type}**. Charged: {type_doc.charged}.{notes}",
                **_request(action, doc, type_doc.params, json_body=json_body, settings=settings),
            }
            types.append(ref(type_name))
        schemas[name] = {
            "title": f"add{suffix}",
            "description": f"{doc.summary} {doc.notes} Key scope: `{scope}`.",
            "anyOf": types,
        }
        variants.append(ref(name))
    body = "ApiRequestJson" if json_body else "ApiRequestForm"
    schemas[body] = {
        "title": "Request (JSON body)" if json_body else "Request (form, multipart or query)",
        "oneOf": variants,
        "discriminator": {
            "propertyName": "action",
            "mapping": {a: f"#/components/schemas/{_component(a, json_body=json_body)}" for a in parameters.ACTIONS},
        },
    }
    return schemas


def query_parameters(settings: Settings) -> list[Schema]:
    """GET takes every parameter from the query string: the union of all actions' parameters, each optional."""
    seen: dict[str, Param] = {}
    for doc in parameters.ACTIONS.values():
        for p in doc.params:
            seen.setdefault(p.name, p)
    for type_doc in parameters.ORDER_TYPES.values():
        for p in type_doc.params:
            seen.setdefault(p.name, p)
    listed: list[Schema] = [
        {
            "name": "action",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "enum": list(parameters.ACTIONS)},
        }
    ]
    for name, p in seen.items():
        schema = param_schema(p, json_body=False, settings=settings)
        description = schema.pop("description")
        listed.append({"name": name, "in": "query", "required": False, "description": description, "schema": schema})
    return listed
