"""Prometheus metrics, registered on an injected registry (one per app, one per test).

Labels stay low-cardinality: model names come from the price table (unpriced models are
refused before any label is made), never account or key ids. With several workers the values
live in prometheus-client's multiprocess files and every worker's /metrics shows the whole
server (gauges are summed over live processes).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from pricing import Usage

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                   10, 30, 60, 120, 300)  # fmt: skip
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 1)  # fmt: skip
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.requests = Counter("tollgate_requests", "Metered requests by outcome.",
                                ["model", "provider", "status"], registry=r)  # fmt: skip
        self.tokens = Counter("tollgate_tokens", "Tokens billed, by type.", ["model", "type"],
                              registry=r)  # fmt: skip
        self.cost = Counter("tollgate_cost_usd", "USD charged (for dashboards; the ledger is "
                            "exact).", ["model"], registry=r)  # fmt: skip
        self.rejections = Counter("tollgate_rejections", "Requests refused before forwarding, "
                                  "by reason.", ["reason"], registry=r)  # fmt: skip
        self.duration = Histogram("tollgate_request_duration_seconds",
                                  "Time from request to the last byte of the answer.",
                                  buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.overhead = Histogram("tollgate_overhead_seconds",
                                  "Time in the gateway minus time waiting on the upstream.",
                                  buckets=OVERHEAD_BUCKETS, registry=r)  # fmt: skip
        self.upstream = Histogram("tollgate_upstream_seconds",
                                  "Time until the upstream's answer headers, by provider.",
                                  ["provider"], buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.redis = Histogram("tollgate_redis_seconds", "Latency of the wallet's Redis scripts.",
                               ["op"], buckets=REDIS_BUCKETS, registry=r)  # fmt: skip
        self.shortfall = Counter("tollgate_strict_shortfall_usd",
                                 "USD a strict wallet could not pay (its charge was cut).",
                                 registry=r)  # fmt: skip
        self.in_flight = Gauge("tollgate_in_flight_requests", "Requests being served.",
                               multiprocess_mode="livesum", registry=r)  # fmt: skip
        self.holds = Gauge("tollgate_holds_outstanding_usd",
                           "USD held for requests in flight in this server.",
                           multiprocess_mode="livesum", registry=r)  # fmt: skip
        self.pricing_info = Gauge("tollgate_pricing_info", "The price table in force (value 1).",
                                  ["version"], multiprocess_mode="liveall",
                                  registry=r)  # fmt: skip
        self.pricing_reloads = Counter("tollgate_pricing_reloads",
                                       "Price table reloads, by result (ok or error).",
                                       ["result"], registry=r)  # fmt: skip
        self.pricing_reload_ok = Gauge("tollgate_pricing_last_reload_ok",
                                       "1 if the last pricing reload succeeded, else 0.",
                                       multiprocess_mode="livemin", registry=r)  # fmt: skip
        self.pricing_reload_ok.set(1)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def set_pricing_version(self, version: str) -> None:
        self.pricing_info.clear()
        self.pricing_info.labels(version).set(1)

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: labels() costs microseconds on every request."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def request_done(self, model: str, provider: str, status: str, usage: Usage,
                     cost_usd: float, seconds: float, overhead: float) -> None:  # fmt: skip
        child = self.child
        child(self.requests, model, provider, status).inc()
        for kind, n in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_tokens),
            ("cache_write", usage.cache_write_tokens + usage.cache_write_1h_tokens),
            ("reasoning", usage.reasoning_tokens),
        ):
            if n:
                child(self.tokens, model, kind).inc(n)
        if cost_usd:
            child(self.cost, model).inc(cost_usd)
        self.duration.observe(seconds)
        self.overhead.observe(overhead)


def exposition(registry: CollectorRegistry) -> bytes:
    """The text for /metrics: this registry, or every worker's when multiprocess mode is on."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged)
    return generate_latest(registry)
