"""Metrics (Prometheus, shared across worker processes) and logs."""
