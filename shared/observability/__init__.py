"""Operations: Prometheus metrics, the /metrics + /healthz + /readyz server, sampled database gauges."""
