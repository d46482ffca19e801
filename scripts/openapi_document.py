"""Print the OpenAPI 3.1 document of `/api/v2` (with the default settings' limits), built by `shared.apidoc`.

Usage: .venv/bin/python scripts/openapi_document.py > docs/openapi.json
tests/apidoc fails when docs/openapi.json differs from what this prints.
"""

from __future__ import annotations

import sys

from shared.apidoc.document import build, render
from shared.settings import Settings


def main() -> int:
    # The defaults, not this machine's PANELFLOW_* environment: the committed document must not depend on it.
    sys.stdout.write(render(build(Settings.model_construct())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
