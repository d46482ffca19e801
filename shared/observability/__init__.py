"""Prometheus metrics: every metric of every process (the ops server and the samplers are in shared/kit/)."""
