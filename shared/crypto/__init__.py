"""Secrets at rest: what must be read back (webhook signing secrets, our upstream keys) is encrypted, not hashed."""
