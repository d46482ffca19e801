"""`setting(...)`: a settings field that carries what docs/configuration.md says about it.

`meaning` (what it does, when to change it, what goes wrong when it is wrong), `type` (as an operator writes the
value: "integer", "seconds", "URL", "list of CIDR networks", …) and `unit` (where the value has one) are kept in
the field's schema (`description`, `json_schema_extra`), from which `scripts/settings_table.py` builds the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field
from pydantic.config import JsonDict
from pydantic_core import PydanticUndefined

TYPE_KEY = "x-type"
UNIT_KEY = "x-unit"


def setting(
    default: Any = PydanticUndefined,
    *,
    meaning: str,
    type: str,
    unit: str = "",
    default_factory: Callable[[], Any] | None = None,
    **constraints: Any,
) -> Any:
    extra: JsonDict = {TYPE_KEY: type, UNIT_KEY: unit}
    if default_factory is not None:
        return Field(default_factory=default_factory, description=meaning, json_schema_extra=extra, **constraints)
    return Field(default, description=meaning, json_schema_extra=extra, **constraints)
