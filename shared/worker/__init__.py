"""The worker's use cases: submit placed orders upstream exactly once, follow them, settle the money."""
