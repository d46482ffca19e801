"""The catalog's use cases: syncing services from upstream providers."""
