"""The upstream provider simulator: a real API v2 panel for development, demos, tests and benchmarks."""
