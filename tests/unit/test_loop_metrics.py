"""The lock-free request-path metrics (gateway.observability.loop_metrics) expose exactly what
prometheus-client's own Counter, Gauge and Histogram expose for the same updates."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from gateway.observability.loop_metrics import LoopCounter, LoopGauge, LoopHistogram

BUCKETS = (0.001, 0.01, 0.1, 1, 10)


def without_created(text: bytes) -> list[bytes]:
    return [line for line in text.splitlines() if b"_created" not in line]


def created_names(text: bytes) -> list[bytes]:
    return [line.rsplit(b" ", 1)[0] for line in text.splitlines() if b"_created" in line]


@pytest.mark.parametrize("seed", range(5))
def test_the_same_updates_give_the_same_exposition(seed: int) -> None:
    rng = random.Random(seed)
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    pairs = [
        (Counter("t_requests", "Requests.", ["model", "status"], registry=theirs),
         LoopCounter("t_requests", "Requests.", ["model", "status"], ours)),
        (Counter("t_shortfall", "USD.", registry=theirs),
         LoopCounter("t_shortfall", "USD.", (), ours)),
        (Gauge("t_in_flight", "In flight.", registry=theirs),
         LoopGauge("t_in_flight", "In flight.", (), ours)),
        (Histogram("t_seconds", "Time.", ["op"], buckets=BUCKETS, registry=theirs),
         LoopHistogram("t_seconds", "Time.", ["op"], buckets=BUCKETS, registry=ours)),
        (Histogram("t_overhead", "Time.", buckets=BUCKETS, registry=theirs),
         LoopHistogram("t_overhead", "Time.", buckets=BUCKETS, registry=ours)),
    ]  # fmt: skip
    for _ in range(300):
        a, b = rng.choice(pairs)
        if isinstance(a, Counter):
            args = (rng.choice(["m1", "m2"]), rng.choice(["200", "500"])) if a._labelnames else ()
            amount = rng.choice([1, 2.5, 0.000001])
            (a.labels(*args) if args else a).inc(amount)
            (b.labels(*args) if args else b).inc(amount)
        elif isinstance(a, Gauge):
            if rng.random() < 0.5:
                a.inc(3)
                b.inc(3)
            else:
                a.dec(1.5)
                b.dec(1.5)
        else:
            value = rng.choice([0.0, 0.001, 0.0011, 0.05, 1, 10, 11, 1e9, rng.random()])
            op = (rng.choice(["admit", "settle"]),) if a._labelnames else ()
            (a.labels(*op) if op else a).observe(value)
            (b.labels(*op) if op else b).observe(value)
    mine, reference = generate_latest(ours), generate_latest(theirs)
    assert without_created(mine) == without_created(reference)
    assert created_names(mine) == created_names(reference)


def test_wrong_labels_and_negative_counts_are_refused() -> None:
    registry = CollectorRegistry()
    counter = LoopCounter("t_requests", "Requests.", ["model"], registry)
    with pytest.raises(ValueError):
        counter.labels("a", "b")
    with pytest.raises(ValueError):
        counter.inc()  # labelled: needs labels()
    with pytest.raises(ValueError):
        counter.labels("a").inc(-1)
    counter.labels(200).inc()
    counter.labels("200").inc()
    assert registry.get_sample_value("t_requests_total", {"model": "200"}) == 2
    plain = LoopCounter("t_plain", "Plain.", (), registry)
    with pytest.raises(ValueError):
        plain.labels("x")
    with pytest.raises(ValueError):  # a name already registered
        LoopCounter("t_plain", "Again.", (), registry)
