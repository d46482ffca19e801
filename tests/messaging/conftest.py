"""Fixtures of the messaging tests: private broker/database instances for outages."""

from tests.support.private_services import private_postgres, private_rabbit

__all__ = ["private_postgres", "private_rabbit"]
