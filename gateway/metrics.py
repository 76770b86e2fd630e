"""Prometheus metrics, registered on an injected registry (one per app, one per test)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pricing import Usage

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
)
OVERHEAD_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1,
)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "tollgate_requests",
            "Metered requests by outcome.",
            ["model", "provider", "status"],
            registry=registry,
        )
        self.tokens = Counter(
            "tollgate_tokens", "Tokens billed, by type.", ["model", "type"], registry=registry
        )
        self.cost = Counter(
            "tollgate_cost_usd",
            "USD charged (for dashboards; the ledger is exact).",
            ["model"],
            registry=registry,
        )
        self.rejections = Counter(
            "tollgate_rejections",
            "Requests refused before forwarding.",
            ["reason"],
            registry=registry,
        )
        self.duration = Histogram(
            "tollgate_request_duration_seconds",
            "Time from request to the last byte of the answer.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.overhead = Histogram(
            "tollgate_overhead_seconds",
            "Time in the gateway minus time waiting on the upstream.",
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "tollgate_in_flight_requests", "Requests being served.", registry=registry
        )

    def record_usage(self, model: str, usage: Usage, cost_usd: float) -> None:
        for kind, n in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_tokens),
            ("cache_write", usage.cache_write_tokens),
            ("reasoning", usage.reasoning_tokens),
        ):
            if n:
                self.tokens.labels(model, kind).inc(n)
        if cost_usd:
            self.cost.labels(model).inc(cost_usd)
