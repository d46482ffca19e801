"""The API v2 ingress: request parameters, authentication, rate limits and the action use cases.

`services/api` is the thin aiohttp edge around this package; see `registry.py` for how actions plug in.
"""
