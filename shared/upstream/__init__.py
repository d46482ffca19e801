"""Talking to upstream providers: the API v2 client, its circuit breaker and response normalisation."""
