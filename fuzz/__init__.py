"""Schemathesis against the running api, driven by the api's own /openapi.json (see docs/api-reference.md)."""
