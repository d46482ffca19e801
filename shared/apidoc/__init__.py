"""The OpenAPI 3.1 description of `/api/v2`, built from the code's own tables (see docs/api-reference.md).

`scripts/openapi_document.py` writes it to `services/api/reference/openapi.json`, which the api serves.
"""
