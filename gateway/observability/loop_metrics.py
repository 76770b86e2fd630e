"""Counters, gauges and histograms for the request path: plain numbers, no locks.

prometheus-client guards every update with a lock, since threads may share a metric, and a
histogram finds its bucket with a loop in Python: a visible share of a request's cost at the
~15 updates a request makes (``bench/HISTORY.md``). A worker updates these only from its event
loop's thread, so they keep plain Python numbers, find a bucket with ``bisect``, and hand
prometheus-client finished families when the registry collects them: the same names and
samples (``_total``, ``_bucket``, ``_count``, ``_sum``, ``_created``) as its own metrics.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

_Child = TypeVar("_Child")


class _Family(Generic[_Child]):
    """A metric and its children by label values; registered on ``registry``."""

    _kind: Any  # the prometheus-client family it collects as (name, doc, labels=...)

    def __init__(
        self, name: str, doc: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _Child] = {}
        if not self.labelnames:
            self._children[()] = self._new_child()
        registry.register(self)

    def _new_child(self) -> _Child:
        raise NotImplementedError

    def labels(self, *values: object) -> _Child:
        child = self._children.get(values)  # type: ignore[arg-type]
        if child is None:
            if len(values) != len(self.labelnames) or not self.labelnames:
                raise ValueError(f"{self.name} takes the labels {self.labelnames}, not {values}")
            key = tuple(map(str, values))  # as prometheus-client does: 200 and "200" are one
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self._new_child()
        return child

    def _only(self) -> _Child:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}: use labels()")
        return self._children[()]

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for values, child in self._children.items():
            self._add(family, values, child)
        return [family]

    def _family(self) -> Metric:
        return self._kind(self.name, self.doc, labels=self.labelnames)  # type: ignore[no-any-return]

    def _add(self, family: Metric, values: tuple[str, ...], child: _Child) -> None:
        raise NotImplementedError


class CounterValue:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class LoopCounter(_Family[CounterValue]):
    _kind = CounterMetricFamily

    def _new_child(self) -> CounterValue:
        return CounterValue()

    def inc(self, amount: float = 1) -> None:
        self._only().inc(amount)

    def _add(self, family: Metric, values: tuple[str, ...], child: CounterValue) -> None:
        assert isinstance(family, CounterMetricFamily)
        family.add_metric(values, child.value, created=child.created)


class GaugeValue:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)


class LoopGauge(_Family[GaugeValue]):
    _kind = GaugeMetricFamily

    def _new_child(self) -> GaugeValue:
        return GaugeValue()

    def inc(self, amount: float = 1) -> None:
        self._only().inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._only().dec(amount)

    def set(self, value: float) -> None:
        self._only().set(value)

    def _add(self, family: Metric, values: tuple[str, ...], child: GaugeValue) -> None:
        assert isinstance(family, GaugeMetricFamily)
        family.add_metric(values, child.value)


class HistogramValue:
    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds  # upper bounds, the last one +Inf
        self.counts = [0] * len(bounds)  # per bucket, not cumulative
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bound >= value
        self.sum += value


class LoopHistogram(_Family[HistogramValue]):
    _kind = HistogramMetricFamily

    def __init__(
        self,
        name: str,
        doc: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.bounds = tuple(bounds)
        self._les = [floatToGoString(b) for b in self.bounds]  # type: ignore[no-untyped-call]
        super().__init__(name, doc, labelnames, registry)

    def _new_child(self) -> HistogramValue:
        return HistogramValue(self.bounds)

    def observe(self, value: float) -> None:
        self._only().observe(value)

    def _add(self, family: Metric, values: tuple[str, ...], child: HistogramValue) -> None:
        assert isinstance(family, HistogramMetricFamily)
        total = 0
        buckets: list[tuple[str, float]] = []
        for le, count in zip(self._les, child.counts, strict=True):
            total += count
            buckets.append((le, float(total)))
        family.add_metric(values, buckets, child.sum)
        labels = dict(zip(self.labelnames, values, strict=True))
        family.samples.append(Sample(self.name + "_created", labels, child.created))
