"""A fresh gateway's /metrics already holds, at 0, every series the Grafana dashboard reads
whose labels are known at start, so its panels show 0 rather than "no data" (and
``increase()`` counts the first event); and a provider's error answer is counted under its
HTTP status."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.edge.model_access import model_list
from gateway.observability.metrics import REDIS_OPS, RELOAD_RESULTS, TOKEN_TYPES, refusal_reasons
from pricing import parse_pricing
from tests.integration.conftest import PRICING, Gateway, GatewayFactory, make_settings
from tests.support.fake_upstream import FakeUpstream

DASHBOARD = Path(__file__).resolve().parents[2] / "config" / "grafana-dashboard.json"
# Series named after the model or the provider: known only from the price table and the
# providers, so the app must hand them to Metrics.expect_models.
PER_MODEL = {"tollgate_requests_total", "tollgate_tokens_total", "tollgate_cost_usd_total",
             "tollgate_upstream_seconds_bucket"}  # fmt: skip
Samples = dict[str, list[tuple[dict[str, str], float]]]
CHAT = {"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def dashboard_series() -> set[str]:
    """The sample names the dashboard's queries read (``tollgate_x_total``, ``_bucket``, ...)."""
    return {name for expr in dashboard_expressions() for name in re.findall(r"tollgate_\w+", expr)}


async def scrape(gw: Gateway) -> bytes:
    async with gw.http.get(gw.url + "/metrics") as r:
        assert r.status == 200
        return await r.read()


async def chat(gw: Gateway, key: str, **extra: Any) -> int:
    async with gw.http.post(gw.url + "/v1/chat/completions", json={**CHAT, **extra},
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        await r.read()
        return r.status


def counted(found: Samples) -> dict[str, float]:
    """gpt-4o-mini's requests by status, those counted at least once."""
    return {labels["status"]: value for labels, value in found["tollgate_requests_total"]
            if labels["model"] == "gpt-4o-mini" and value}  # fmt: skip


def samples(text: bytes) -> tuple[Samples, set[str]]:
    """(samples by name, ``_created`` left out; the names of the families declared)."""
    found: Samples = {}
    declared = set()
    for family in text_string_to_metric_families(text.decode()):
        declared.add(family.name)
        for s in family.samples:
            if not s.name.endswith("_created"):
                found.setdefault(s.name, []).append((s.labels, s.value))
    return found, declared


def family_of(series: str) -> str:
    for suffix in ("_total", "_bucket"):
        if series.endswith(suffix):
            return series.removesuffix(suffix)
    return series


def promtool() -> str | None:
    found = shutil.which("promtool")
    if found is None and os.environ.get("CI"):
        pytest.fail("promtool is missing: scripts/test.sh installs Debian's prometheus")
    return found


async def test_every_series_the_dashboard_reads_is_there_at_0(gateway: Gateway) -> None:
    found, declared = samples(await scrape(gateway))
    wanted = dashboard_series()
    assert "tollgate_rejections_total" in wanted and "tollgate_requests_total" in wanted
    for series in wanted:
        assert family_of(series) in declared, series
        for labels, value in found.get(series, []):
            expected = 1.0 if series == "tollgate_pricing_info" else 0.0
            assert value == expected, (series, labels, value)
        if series not in PER_MODEL:
            assert found.get(series), f"{series}: no sample at start"
    reasons = {labels["reason"] for labels, _ in found["tollgate_rejections_total"]}
    assert reasons == set(refusal_reasons())
    assert {"model_not_priced", "insufficient_balance", "invalid_api_key",
            "rate_limit_exceeded"} <= reasons  # fmt: skip
    results = {labels["result"] for labels, _ in found["tollgate_pricing_reloads_total"]}
    assert results == set(RELOAD_RESULTS)
    ops = {labels["op"] for labels, _ in found["tollgate_redis_seconds_bucket"]}
    assert ops == set(REDIS_OPS)
    await assert_promtool_clean(await scrape(gateway))


async def test_every_model_the_gateway_serves_starts_at_0(gateway: Gateway) -> None:
    found, _ = samples(await scrape(gateway))
    routes = [(m["id"], m["owned_by"]) for m in model_list(
        parse_pricing(PRICING, source="test"), make_settings("", Path()).providers, None
    )["data"]]  # fmt: skip
    assert ("gpt-4o-mini", "openai") in routes and ("claude-sonnet-4-6", "anthropic") in routes

    def value(series: str, **labels: str) -> float | None:
        return next((v for got, v in found.get(series, []) if got == labels), None)

    for model, provider in routes:
        assert value("tollgate_requests_total", model=model, provider=provider, status="200") == 0
        assert value("tollgate_cost_usd_total", model=model) == 0
        for kind in TOKEN_TYPES:
            assert value("tollgate_tokens_total", model=model, type=kind) == 0, (model, kind)
        assert value("tollgate_upstream_seconds_bucket", provider=provider, le="+Inf") == 0


async def test_every_dashboard_panel_shows_0_at_start(gateway: Gateway, tmp_path: Path) -> None:
    """Each counter and gauge query, evaluated by Prometheus's own engine (``promtool test
    rules``) over 15 minutes of a fresh gateway's scrape, answers 0 (the pricing version: 1)
    rather than nothing. Latency quantiles are left out: with no request yet there is none."""
    tool = promtool()
    if tool is None:
        pytest.skip("promtool not installed")
    found, _ = samples(await scrape(gateway))
    series = [
        {"series": name + "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}",
         "values": f"{value:g}+0x15"}
        for name, rows in found.items() for labels, value in rows
    ]  # fmt: skip
    checks: list[dict[str, Any]] = []
    for expr in dashboard_expressions():
        if "histogram_quantile" in expr:
            continue
        checks.append({"expr": f"clamp_max(count({expr}), 1)", "eval_time": "15m",
                       "exp_samples": [{"labels": "{}", "value": 1}]})  # fmt: skip
        if "tollgate_pricing_info" not in expr:
            checks.append({"expr": f"({expr}) != 0", "eval_time": "15m", "exp_samples": []})
    assert len(checks) >= 10
    path = tmp_path / "dashboard_test.yml"
    tests = {"tests": [{"interval": "1m", "input_series": series, "promql_expr_test": checks}]}
    path.write_text(json.dumps(tests), encoding="utf-8")  # JSON is YAML
    done = await asyncio.to_thread(subprocess.run, [tool, "test", "rules", str(path)],
                                   capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


async def assert_promtool_clean(text: bytes) -> None:
    tool = promtool()
    if tool is None:
        return
    done = await asyncio.to_thread(subprocess.run, [tool, "check", "metrics"], input=text,
                                   capture_output=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == b"" and done.stderr.strip() == b""


@pytest.mark.parametrize("stream", [False, True])
async def test_a_provider_error_is_counted_under_its_http_status(
    make_gateway: GatewayFactory, upstream: FakeUpstream, stream: bool
) -> None:
    gw = await make_gateway()
    _, key = await gw.account()
    for status in (500, 429):
        upstream.status = status
        assert await chat(gw, key, stream=stream) == status
    text = await scrape(gw)
    found, _ = samples(text)
    assert counted(found) == {"500": 1, "429": 1}  # nothing counted as a success
    assert ({"model": "gpt-4o-mini", "provider": "openai", "status": "500"}, 1.0) in found[
        "tollgate_requests_total"]  # fmt: skip
    assert not any(v for _, v in found.get("tollgate_cost_usd_total", []))  # errors cost nothing
    await assert_promtool_clean(text)


async def test_a_provider_that_never_answers_is_counted_as_error(
    make_gateway: GatewayFactory, upstream: FakeUpstream
) -> None:
    gw = await make_gateway(first_byte_timeout=0.3)
    _, key = await gw.account()
    upstream.delay = 1.0  # its headers come after first_byte_timeout: no status of its own
    assert await chat(gw, key) == 504  # the gateway's upstream_timeout, not the provider's
    found, _ = samples(await scrape(gw))
    assert counted(found) == {"error": 1}
