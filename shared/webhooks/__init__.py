"""Outbound webhooks: signing, the SSRF guard, the retry schedule, and the delivery use cases.

`services/webhooks` (the dispatcher process), the api's `webhook.*` actions and the admin CLI call in here.
"""
