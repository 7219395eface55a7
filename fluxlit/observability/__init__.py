"""Observability: structured logs, the access line, Prometheus metrics and the bridges that feed them."""
