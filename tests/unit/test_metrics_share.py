"""Several workers' metrics merged into one /metrics (observability.metrics_share): counters and
histograms summed over every worker that ever published, gauges per their mode over live ones."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gateway.observability.metrics import Metrics
from gateway.observability.metrics_share import SharedMetrics
from pricing import Usage

NOW = 1_000_000.0
CRASHED = 104


def worker(tmp_path: Path, pid: int, *, clock: float = NOW) -> tuple[Metrics, SharedMetrics]:
    metrics = Metrics(CollectorRegistry())
    shared = SharedMetrics(metrics.registry, tmp_path, metrics.gauge_modes, pid=pid,
                           alive=lambda p: p != CRASHED, clock=lambda: clock)  # fmt: skip
    return metrics, shared


def serve(metrics: Metrics, n: int, model: str = "gpt-flat", provider: str = "openai") -> None:
    for _ in range(n):
        metrics.request_done(model, provider, "200", Usage(input_tokens=10, output_tokens=5),
                             0.002, 0.5, 0.002)  # fmt: skip


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in found, key
            found[key] = s.value
    return found


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float | None:  # fmt: skip
    return found.get((name, tuple(sorted(labels.items()))))


def test_live_registry_and_peer_snapshots_merge_to_the_server_totals(tmp_path: Path) -> None:
    a, a_share = worker(tmp_path, 101)  # answers /metrics
    b, b_share = worker(tmp_path, 102)  # live
    c, c_share = worker(tmp_path, 103)  # exited cleanly: final snapshot
    d, d_share = worker(tmp_path, CRASHED)  # killed: its process is gone
    e, e_share = worker(tmp_path, 105, clock=NOW - 60)  # hung: no snapshot for a minute
    for m, n in ((a, 1), (b, 2), (c, 4), (d, 8), (e, 16)):
        serve(m, n)
        m.in_flight.inc(n)
        m.holds.inc(n / 100)
        m.set_pricing_version("v1")
    serve(c, 3, model="claude-x", provider="anthropic")  # a series only an exited worker has
    d.pricing_reload_ok.set(0)  # a dead worker's failed reload does not count
    b_share.publish()
    c_share.publish(final=True)
    d_share.publish()
    e_share.publish()
    serve(a, 32)  # after the others published: the answering worker shows its live figures

    found = samples(a_share.exposition())

    ok = {"model": "gpt-flat", "provider": "openai", "status": "200"}
    assert value(found, "tollgate_requests_total", **ok) == 1 + 2 + 4 + 8 + 16 + 32
    assert value(found, "tollgate_requests_total", model="claude-x", provider="anthropic",
                 status="200") == 3  # fmt: skip
    assert value(found, "tollgate_tokens_total", model="gpt-flat", type="input") == 63 * 10
    assert value(found, "tollgate_cost_usd_total", model="gpt-flat") == pytest.approx(63 * 0.002)
    assert value(found, "tollgate_request_duration_seconds_count") == 66
    assert value(found, "tollgate_request_duration_seconds_sum") == 33
    assert value(found, "tollgate_request_duration_seconds_bucket", le="0.25") == 0
    assert value(found, "tollgate_request_duration_seconds_bucket", le="0.5") == 66
    assert value(found, "tollgate_request_duration_seconds_bucket", le="+Inf") == 66
    assert value(found, "tollgate_overhead_seconds_bucket", le="0.002") == 66
    # Gauges: live workers only (a and b).
    assert value(found, "tollgate_in_flight_requests") == 1 + 2
    assert value(found, "tollgate_holds_outstanding_usd") == pytest.approx(0.03)
    assert value(found, "tollgate_pricing_last_reload_ok") == 1
    assert {k for k in found if k[0] == "tollgate_pricing_info"} == {
        ("tollgate_pricing_info", (("pid", "101"), ("version", "v1"))),
        ("tollgate_pricing_info", (("pid", "102"), ("version", "v1"))),
    }  # liveall: one series per live worker
    assert not any(name.endswith("_created") for name, _ in found)

    # Whichever worker answers next, nothing goes backwards: a published on answering.
    found_b = samples(b_share.exposition())
    assert value(found_b, "tollgate_requests_total", **ok) == 63
    assert value(found_b, "tollgate_in_flight_requests") == 3


def test_gauge_modes_over_live_workers(tmp_path: Path) -> None:
    a, a_share = worker(tmp_path, 101)
    b, b_share = worker(tmp_path, 102)
    a.set_pricing_version("v1")
    b.set_pricing_version("v2")
    b.pricing_reload_ok.set(0)
    b_share.publish()
    found = samples(a_share.exposition())
    assert value(found, "tollgate_pricing_last_reload_ok") == 0  # livemin
    assert value(found, "tollgate_pricing_info", pid="101", version="v1") == 1
    assert value(found, "tollgate_pricing_info", pid="102", version="v2") == 1
    b.set_pricing_version("v3")  # an old version is gone, not left behind at 1
    b_share.publish()
    found = samples(a_share.exposition())
    assert value(found, "tollgate_pricing_info", pid="102", version="v2") is None
    assert value(found, "tollgate_pricing_info", pid="102", version="v3") == 1


def test_same_names_help_and_types_as_one_worker(tmp_path: Path) -> None:
    one = Metrics(CollectorRegistry())
    shared = Metrics(CollectorRegistry(), tmp_path)
    for m in (one, shared):
        serve(m, 2)
        m.child(m.redis, "admit").observe(0.001)
        m.rejections.labels("model_not_priced").inc()
    alone = {(f.name, f.type, f.documentation): f for f in one.registry.collect()}
    assert shared.shared is not None
    merged = {
        (f.name, f.type, f.documentation): f
        for f in text_string_to_metric_families(shared.shared.exposition().decode())
    }
    assert merged.keys() == alone.keys()
    for key, family in alone.items():
        assert [s[:3] for s in merged[key].samples] == [
            s[:3] for s in family.samples if not s.name.endswith("_created")
        ]


async def test_publishes_while_running_and_a_final_snapshot_on_exit(tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry())
    shared = SharedMetrics(metrics.registry, tmp_path, metrics.gauge_modes, pid=7,
                           interval=0.02)  # fmt: skip
    path = tmp_path / "worker-7.json"
    async with shared.running():
        serve(metrics, 1)
        for _ in range(100):
            await asyncio.sleep(0.02)
            if path.exists() and b"tollgate_requests_total" in path.read_bytes():
                break
        doc = orjson.loads(path.read_bytes())
        assert doc["final"] is False
        serve(metrics, 1)
    doc = orjson.loads(path.read_bytes())
    assert doc["final"] is True
    [requests] = doc["families"]["tollgate_requests"]
    assert requests[2] == 2
    assert os.listdir(tmp_path) == ["worker-7.json"]  # no temp file left


def test_a_directory_that_cannot_be_written_still_answers(tmp_path: Path) -> None:
    a, a_share = worker(tmp_path / "gone", 101)
    serve(a, 2)
    found = samples(a_share.exposition())  # logged, not raised: /metrics still answers
    ok = {"model": "gpt-flat", "provider": "openai", "status": "200"}
    assert value(found, "tollgate_requests_total", **ok) == 2
