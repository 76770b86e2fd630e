"""Prometheus metrics, registered on an injected registry (one per app, one per test).

Labels stay low-cardinality: model names come from the price table (unpriced models are
refused before any label is made), never account or key ids. With several workers each one
counts in its own process and every worker's /metrics shows the whole server (see
:mod:`gateway.observability.metrics_share`).

Every series whose labels are known before the first request starts at 0 (a refusal reason,
a reload result, a Redis op; with :meth:`Metrics.expect_models`, each model the gateway can
serve): a dashboard shows 0 rather than nothing, and ``increase()`` counts the first event
(a series born at 1 has no earlier sample to rise from).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from gateway import errors
from gateway.observability.loop_metrics import LoopCounter, LoopGauge, LoopHistogram
from gateway.observability.metrics_share import SharedMetrics
from pricing import Usage

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                   10, 30, 60, 120, 300)  # fmt: skip
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 1)  # fmt: skip
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2)
# How a gauge's values merge over workers (prometheus-client's multiprocess_mode); "live"
# modes count live workers only. See gateway.observability.metrics_share.
GaugeMode = Literal["sum", "livesum", "min", "livemin", "max", "livemax", "all", "liveall"]
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
REDIS_OPS = ("admit", "settle")  # the scripts timed on the request path
RELOAD_RESULTS = ("ok", "error")
# Error codes that never refuse a metered request before it is forwarded: the provider's
# (after forwarding), the admin API's, and the catch-all.
NOT_REFUSALS = frozenset({"internal_error", "upstream_error", "upstream_timeout",
                          "invalid_admin_token", "not_found", "conflict"})  # fmt: skip


def refusal_reasons() -> list[str]:
    """Every ``reason`` of ``tollgate_rejections_total``: the codes of the error tree (rooted
    in :class:`gateway.errors.GatewayError`, wherever a branch is defined) that can refuse a
    request before it is forwarded."""
    codes, todo = set(), [errors.GatewayError]
    while todo:
        cls = todo.pop()
        codes.add(cls.code)
        todo.extend(cls.__subclasses__())
    return sorted(codes - NOT_REFUSALS)


class Metrics:
    """The gateway's metrics on ``registry``; with ``shared_dir`` (``tollgate serve --workers
    N``) also published there for the other workers, and merged with theirs on /metrics."""

    def __init__(self, registry: CollectorRegistry, shared_dir: Path | None = None) -> None:
        self.registry = registry
        self.gauge_modes: dict[str, str] = {}  # how workers' values merge, by gauge name
        r = registry
        # Updated on every request: lock-free (observability.loop_metrics). The rest: rarely.
        self.requests = LoopCounter("tollgate_requests", "Metered requests by outcome.",
                                    ["model", "provider", "status"], r)  # fmt: skip
        self.tokens = LoopCounter("tollgate_tokens", "Tokens billed, by type.", ["model", "type"],
                                  r)  # fmt: skip
        self.cost = LoopCounter("tollgate_cost_usd", "USD charged (for dashboards; the ledger "
                                "is exact).", ["model"], r)  # fmt: skip
        self.rejections = LoopCounter("tollgate_rejections", "Requests refused before "
                                      "forwarding, by reason.", ["reason"], r)  # fmt: skip
        self.duration = LoopHistogram("tollgate_request_duration_seconds",
                                      "Time from request to the last byte of the answer.",
                                      buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.overhead = LoopHistogram("tollgate_overhead_seconds",
                                      "Time in the gateway minus time waiting on the upstream.",
                                      buckets=OVERHEAD_BUCKETS, registry=r)  # fmt: skip
        self.upstream = LoopHistogram("tollgate_upstream_seconds",
                                      "Time until the upstream's answer headers, by provider.",
                                      ["provider"], buckets=LATENCY_BUCKETS,
                                      registry=r)  # fmt: skip
        self.redis = LoopHistogram("tollgate_redis_seconds",
                                   "Latency of the wallet's Redis scripts.", ["op"],
                                   buckets=REDIS_BUCKETS, registry=r)  # fmt: skip
        self.shortfall = LoopCounter("tollgate_strict_shortfall_usd",
                                     "USD a strict wallet could not pay (its charge was cut).",
                                     (), r)  # fmt: skip
        self.in_flight = self._loop_gauge("tollgate_in_flight_requests",
                                          "Requests being served.", "livesum")  # fmt: skip
        self.holds = self._loop_gauge("tollgate_holds_outstanding_usd",
                                      "USD held for requests in flight in this server.",
                                      "livesum")  # fmt: skip
        self.pricing_info = self._gauge("tollgate_pricing_info",
                                        "The price table in force (value 1).", "liveall",
                                        ["version"])  # fmt: skip
        self.pricing_reloads = Counter("tollgate_pricing_reloads",
                                       "Price table reloads, by result (ok or error).",
                                       ["result"], registry=r)  # fmt: skip
        self.pricing_reload_ok = self._gauge("tollgate_pricing_last_reload_ok",
                                             "1 if the last pricing reload succeeded, else 0.",
                                             "livemin")  # fmt: skip
        self.pricing_reload_ok.set(1)
        self.journal_pending = self._gauge("tollgate_journal_pending_settles",
                                           "Settles in the local journal that Redis has not "
                                           "applied yet.", "livesum")  # fmt: skip
        self.journal_oldest = self._gauge("tollgate_journal_oldest_pending_seconds",
                                          "Age of the oldest settle waiting in the journal.",
                                          "livemax")  # fmt: skip
        self.journal_failures = Counter("tollgate_journal_write_failures",
                                        "Settle journal lines that could not be written (the "
                                        "settle went on without them).", registry=r)  # fmt: skip
        self.settles_refused = Counter("tollgate_settles_refused",
                                       "Settles Redis refused for good (the request is "
                                       "unbilled; see the log).", registry=r)  # fmt: skip
        self.streams_cut = Counter("tollgate_streams_cut",
                                   "Streams the gateway ended because their client read "
                                   "nothing for client_write_timeout (billed as delivered).",
                                   registry=r)  # fmt: skip
        self.anomalies = Counter("tollgate_usage_anomalies",
                                 "Upstream answers whose usage or body was not believable, by "
                                 "kind (the request's record lists each).", ["kind"],
                                 registry=r)  # fmt: skip
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        for reason in refusal_reasons():
            self.rejections.labels(reason)
        for result in RELOAD_RESULTS:
            self.pricing_reloads.labels(result)
        for op in REDIS_OPS:
            self.child(self.redis, op)
        self.shared = SharedMetrics(registry, shared_dir, self.gauge_modes) if shared_dir else None

    def _gauge(self, name: str, doc: str, mode: GaugeMode, labels: Sequence[str] = ()) -> Gauge:
        self.gauge_modes[name] = mode
        return Gauge(name, doc, labels, multiprocess_mode=mode, registry=self.registry)

    def _loop_gauge(self, name: str, doc: str, mode: GaugeMode) -> LoopGauge:
        self.gauge_modes[name] = mode
        return LoopGauge(name, doc, (), self.registry)

    async def publishing(self, _app: object) -> AsyncIterator[None]:
        """For ``app.cleanup_ctx``, ahead of anything that updates metrics while it stops:
        with several workers, publish this worker's figures every interval and a last time
        once everything else has shut down."""
        if self.shared is None:
            yield
            return
        async with self.shared.running():
            yield

    def set_pricing_version(self, version: str) -> None:
        self.pricing_info.clear()
        self.pricing_info.labels(version).set(1)

    def expect_models(self, routes: Iterable[tuple[str, str]]) -> None:
        """Start the series of each ``(model, provider)`` at 0: requests answered 200, tokens
        of every type, cost, and the provider's latency. ``routes``: the priced models some
        provider serves (as ``GET /v1/models`` lists them), at start and after a reload;
        the price table bounds how many there are."""
        for model, provider in routes:
            self.child(self.requests, model, provider, "200")
            for kind in TOKEN_TYPES:
                self.child(self.tokens, model, kind)
            self.child(self.cost, model)
            self.child(self.upstream, provider)

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


def exposition(metrics: Metrics) -> bytes:
    """The text for /metrics: this worker's, or with several workers the whole server's."""
    if metrics.shared is not None:
        return metrics.shared.exposition()
    return generate_latest(metrics.registry)
