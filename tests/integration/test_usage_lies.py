"""Usage that lies is not billed as told: unreadable or absurd reports are estimated and
recorded as anomalies (on the record, in the metric); provider errors cost nothing."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.app import PRICING as PRICING_KEY
from pricing import format_usd, parse_pricing, parse_usd
from tests.integration.conftest import PRICING, Gateway
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.redis_cluster_too

CHAT = {"model": "gpt-4o-mini", "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello there"}]}  # fmt: skip
IN, OUT = 150, 600  # gpt-4o-mini: nanodollars a token


async def chat(gw: Gateway, key: str, **extra: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with gw.http.post(gw.url + "/v1/chat/completions", json={**CHAT, **extra},
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        await r.read()
        headers = {k.lower(): v for k, v in r.headers.items()}
    return r.status, await gw.record(key, headers["x-request-id"]), headers


def anomalies(gw: Gateway, kind: str) -> float:
    return gw.registry.get_sample_value("tollgate_usage_anomalies_total", {"kind": kind}) or 0.0


async def test_integral_floats_are_counts(gateway: Gateway, upstream: FakeUpstream) -> None:
    _, key = await gateway.account(topup="1.00")
    upstream.usage_override = {"prompt_tokens": 40.0, "completion_tokens": 50.0}
    status, rec, headers = await chat(gateway, key)
    assert status == 200 and rec["usage_source"] == "upstream", rec
    assert rec["usage"]["input_tokens"] == 40 and rec["usage"]["output_tokens"] == 50
    assert parse_usd(headers["x-usage-cost"]) == 40 * IN + 50 * OUT
    assert rec["anomalies"] == []


@pytest.mark.parametrize("lie", [
    {"completion_tokens": -5}, {"completion_tokens": 2.5}, {"completion_tokens": "12"},
    {"completion_tokens": 10**15}, {"prompt_tokens": 10, "prompt_tokens_details":
                                    {"cached_tokens": 500}},
])  # fmt: skip
async def test_unreadable_usage_is_estimated_and_recorded(
    gateway: Gateway, upstream: FakeUpstream, lie: dict[str, Any]
) -> None:
    account, key = await gateway.account(topup="1.00")
    upstream.usage_override = lie
    status, rec, _ = await chat(gateway, key)
    assert status == 200 and rec["usage_source"] == "estimated", rec
    assert 0 < rec["usage"]["output_tokens"] <= 100, rec  # within max_tokens
    kinds = [a["kind"] for a in rec["anomalies"]]
    assert kinds == ["unreadable_usage"], rec
    raw = str(next(iter(lie.values())) if len(lie) == 1 else lie["prompt_tokens_details"])
    assert raw.replace("'", '"').replace(" ", "") in rec["anomalies"][0]["detail"].replace(" ", "")
    assert anomalies(gateway, "unreadable_usage") == 1
    assert parse_usd((await gateway.wallet(account))["balance"]) > parse_usd("0.99")


async def test_output_above_the_bound_is_billed_but_recorded_and_absurd_output_is_not(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    _, key = await gateway.account(topup="1.00")
    upstream.usage_override = {"completion_tokens": 150}  # max_tokens is 100
    _, rec, _ = await chat(gateway, key)
    assert rec["usage_source"] == "upstream" and rec["usage"]["output_tokens"] == 150
    assert [a["kind"] for a in rec["anomalies"]] == ["output_over_bound"], rec
    upstream.usage_override = {"completion_tokens": 1_000_000}
    _, rec, _ = await chat(gateway, key)
    assert rec["usage_source"] == "estimated" and rec["usage"]["output_tokens"] <= 100, rec
    assert [a["kind"] for a in rec["anomalies"]] == ["absurd_usage"], rec
    upstream.usage_override = {"completion_tokens": 1_000_000}
    _, rec, _ = await chat(gateway, key, stream=True, stream_options={"include_usage": True})
    assert rec["usage_source"] == "estimated" and rec["usage"]["output_tokens"] <= 100, rec
    assert [a["kind"] for a in rec["anomalies"]] == ["absurd_usage"], rec


async def test_a_provider_error_costs_nothing_even_with_usage(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    account, key = await gateway.account(topup="1.00")
    upstream.status = 500
    upstream.usage_override = {"prompt_tokens": 1000, "completion_tokens": 1000}
    status, rec, headers = await chat(gateway, key)
    assert status == 500 and headers["x-usage-cost"] == "0.00", headers
    assert rec["status"] == "failed" and rec["cost"] == "0.00", rec
    assert (await gateway.wallet(account))["balance"] == "1.00"


@pytest.mark.parametrize("answer", [("text/html", b"<html><body>Bad gateway</body></html>"),
                                    ("text/event-stream", b'data: {"choices": []}\n\n')])
async def test_a_body_that_is_not_what_the_endpoint_returns_is_estimated_and_recorded(
    gateway: Gateway, upstream: FakeUpstream, answer: tuple[str, bytes]
) -> None:
    _, key = await gateway.account(topup="1.00")
    upstream.raw_answer = answer
    status, rec, _ = await chat(gateway, key)
    assert status == 200 and rec["usage_source"] == "estimated", rec
    assert [a["kind"] for a in rec["anomalies"]] == ["unexpected_body"], rec
    assert answer[0] in rec["anomalies"][0]["detail"]


@pytest.mark.parametrize("lie", [{"completion_tokens": -5}, {"prompt_tokens": "9"}])
async def test_an_unreadable_stream_usage_is_estimated_and_recorded(
    gateway: Gateway, upstream: FakeUpstream, lie: dict[str, Any]
) -> None:
    _, key = await gateway.account(topup="1.00")
    upstream.usage_override = lie
    status, rec, _ = await chat(gateway, key, stream=True)
    assert status == 200 and rec["usage_source"] == "estimated", rec
    assert [a["kind"] for a in rec["anomalies"]] == ["unreadable_usage"], rec
    assert str(next(iter(lie.values()))) in rec["anomalies"][0]["detail"]


async def test_a_cost_cut_at_the_wallet_cap_is_the_records_shortfall(
    make_gateway: Any, upstream: FakeUpstream
) -> None:
    """A price no real model has, a count the checks accept: 10^8 input tokens at $10^9 per
    million is 10^20 nanodollars, above 2^53. The charge is cut to the cap; today that left
    only a log line, now the cut is the record's shortfall and an anomaly."""
    gw = await make_gateway()
    assert gw.app is not None
    gw.app[PRICING_KEY].replace(parse_pricing(
        PRICING + "  gpt-gold: {input: 1000000000, output: 1, max_output_tokens: 1}\n",
        source="test"))  # fmt: skip
    _, key = await gw.account(topup="1.00", hold_policy="postpaid")
    upstream.usage_override = {"prompt_tokens": 100_000_000, "completion_tokens": 1}
    status, rec, _ = await chat(gw, key, model="gpt-gold", max_tokens=1)
    assert status == 200, rec
    cap = 2**53 - 1
    assert rec["cost"] == format_usd(cap), rec
    cost = 10**8 * 10**12 + 1 * 10**3  # nanodollars a token: 10^12 in, 10^3 out
    assert rec["shortfall"] == format_usd(cost - cap), rec
    assert [a["kind"] for a in rec["anomalies"]] == ["cost_capped"], rec
