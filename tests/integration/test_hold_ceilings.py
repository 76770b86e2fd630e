"""Holds that do not strand money (issue 18): a request without ``max_tokens`` is held for at
most ``hold_output_tokens`` output tokens (and its plan's ``hold_max``), so a small wallet is
spent down to far less than a quarter; a reply longer than its hold is charged in full when the
balance covers it and cut, with a recorded shortfall, when a strict balance does not."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.apis.tokens import TokenCounter
from gateway.app import PRICING as PRICING_KEY
from gateway.billing.plans import parse_plans
from pricing import ModelPrice, Usage, compute_cost, format_usd, parse_pricing, parse_usd
from tests.integration.conftest import PRICING, Gateway, GatewayFactory
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.redis_cluster_too

# gpt-4o-mini's prices with no max_output_tokens: its ceiling is default_max_output_tokens
# (4096), which held in full is 0.0024576 USD, a quarter of a $0.01 top-up.
CHEAP_PRICING = PRICING + "  gpt-cheap: {input: 0.15, output: 0.60}\n"
TABLE = parse_pricing(CHEAP_PRICING, source="test")
CHEAP = TABLE.lookup("gpt-cheap")
assert CHEAP is not None and CHEAP.output is not None
MESSAGES = [{"role": "user", "content": "hello there"}]
REPLY = {"prompt_tokens": 20, "completion_tokens": 700, "total_tokens": 720}  # 0.000423 USD


async def cheap_gateway(make_gateway: GatewayFactory, **overrides: Any) -> Gateway:
    gw = await make_gateway(**overrides)
    gw.app[PRICING_KEY].replace(TABLE)  # as a pricing reload would
    return gw


async def chat(
    gw: Gateway, key: str, *, path: str = "/v1/chat/completions", **fields: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = {"model": "gpt-cheap", "messages": MESSAGES, **fields}
    body = {name: value for name, value in body.items() if value is not None}
    async with gw.http.post(gw.url + path, json=body,
                            headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        headers = {k.lower(): v for k, v in r.headers.items()}
        if fields.get("stream"):
            return r.status, {"text": await r.text()}, headers
        return r.status, await r.json(), headers


def cost(price: ModelPrice, input_tokens: int, output_tokens: int) -> int:
    return compute_cost(Usage(input_tokens=input_tokens, output_tokens=output_tokens), price)


def prompt(counter: TokenCounter, **fields: Any) -> int:
    """The prompt the gateway holds for (its estimate, with its safety margin)."""
    return counter.estimate_prompt({"model": "gpt-cheap", "messages": MESSAGES, **fields},
                                   "gpt-cheap")  # fmt: skip


async def spend_until_refused(gw: Gateway, key: str, upstream: FakeUpstream,
                             account: str) -> int:  # fmt: skip
    """Requests without max_tokens, each costing 0.000423, until one is refused: how many were
    answered. Each waits for the one before it to be charged (a wallet read waits for this
    process's settles), so no hold still in Redis makes a refusal come early."""
    upstream.usage_override = REPLY
    for answered in range(100):
        await gw.wallet(account)
        status, body, _ = await chat(gw, key)
        if status != 200:
            assert status == 403 and body["error"]["code"] == "insufficient_balance", body
            return answered
    raise AssertionError("never refused")


async def test_a_cent_is_spent_down_to_far_less_than_a_quarter(
    make_gateway: GatewayFactory, upstream: FakeUpstream, counter: TokenCounter
) -> None:
    est = prompt(counter)
    capped, whole = cost(CHEAP, est, 1024), cost(CHEAP, est, 4096)
    gw = await cheap_gateway(make_gateway)  # hold_output_tokens: 1024, the default
    account, key = await gw.account(topup="0.01")
    status, _, headers = await chat(gw, key)
    assert status == 200
    rec = await gw.record(key, headers["x-request-id"])
    assert (rec["held"], rec["worst_case"]) == (format_usd(capped), format_usd(whole)), rec
    answered = await spend_until_refused(gw, key, upstream, account)
    stranded = parse_usd((await gw.wallet(account))["balance"])
    # Refused only once the balance is below one capped hold: 0.00061665, about 6% of 0.01.
    assert 0 <= stranded < capped < parse_usd("0.00062")
    assert stranded < parse_usd("0.01") // 10
    assert (await gw.wallet(account))["held"] == "0.00"

    # The same cent with the whole ceiling held (hold_output_tokens: null) strands over 20%.
    old = await cheap_gateway(make_gateway, hold_output_tokens=None)
    account, key = await old.account(topup="0.01")
    answered_whole = await spend_until_refused(old, key, upstream, account)
    stranded = parse_usd((await old.wallet(account))["balance"])
    assert whole - parse_usd("0.000423") <= stranded < whole
    assert stranded > parse_usd("0.01") // 5
    assert answered_whole < answered  # the capped cent bought more answers


async def test_an_explicit_max_tokens_is_held_in_full(
    make_gateway: GatewayFactory, upstream: FakeUpstream, counter: TokenCounter
) -> None:
    gw = await cheap_gateway(make_gateway)
    _, key = await gw.account(topup="1.00")
    for field, path in (("max_tokens", "/v1/chat/completions"),
                        ("max_completion_tokens", "/v1/chat/completions")):  # fmt: skip
        status, _, headers = await chat(gw, key, path=path, **{field: 3000})
        assert status == 200
        rec = await gw.record(key, headers["x-request-id"])
        held = format_usd(cost(CHEAP, prompt(counter, **{field: 3000}), 3000))
        assert (rec["held"], rec["worst_case"]) == (held, held), rec
    # n completions without a limit: each is held for hold_output_tokens.
    status, _, headers = await chat(gw, key, n=2)
    rec = await gw.record(key, headers["x-request-id"])
    assert rec["held"] == format_usd(cost(CHEAP, prompt(counter, n=2), 2048)), rec


async def test_the_plan_caps_the_hold_in_usd_and_the_model_overrides_the_tokens(
    make_gateway: GatewayFactory, upstream: FakeUpstream, counter: TokenCounter
) -> None:
    plans = parse_plans({"tiny": {"hold_max": "0.0002"}})
    gw = await cheap_gateway(make_gateway, plans=plans)
    _, key = await gw.account(topup="1.00", plan="tiny")
    status, _, headers = await chat(gw, key)
    assert status == 200
    rec = await gw.record(key, headers["x-request-id"])
    est = prompt(counter)
    affordable = (parse_usd("0.0002") - cost(CHEAP, est, 0)) * 10**6 // CHEAP.output
    assert rec["held"] == format_usd(cost(CHEAP, est, affordable)), rec
    assert parse_usd(rec["held"]) <= parse_usd("0.0002") < cost(CHEAP, est, affordable + 1)
    # The plan caps no explicit limit.
    status, _, headers = await chat(gw, key, max_tokens=3000)
    rec = await gw.record(key, headers["x-request-id"])
    assert rec["held"] == format_usd(cost(CHEAP, prompt(counter, max_tokens=3000), 3000)), rec

    # A model's own hold_output_tokens wins over the gateway's.
    gw.app[PRICING_KEY].replace(parse_pricing(
        PRICING + "  gpt-cheap: {input: 0.15, output: 0.60, hold_output_tokens: 100}\n",
        source="test"))  # fmt: skip
    _, key = await gw.account(topup="1.00")
    status, _, headers = await chat(gw, key)
    rec = await gw.record(key, headers["x-request-id"])
    assert rec["held"] == format_usd(cost(CHEAP, est, 100)), rec


@pytest.mark.parametrize("stream", [False, True])
async def test_a_reply_past_its_hold_is_charged_in_full_or_cut_with_a_shortfall(
    make_gateway: GatewayFactory, upstream: FakeUpstream, stream: bool
) -> None:
    gw = await cheap_gateway(make_gateway)
    upstream.usage_override = {"prompt_tokens": 20, "completion_tokens": 3000,
                               "total_tokens": 3020}  # fmt: skip
    full = cost(CHEAP, 20, 3000)  # 0.001803: above the 1024-token hold, within the ceiling

    async def charge(key: str) -> tuple[str, dict[str, Any]]:
        status, body, headers = await chat(gw, key, stream=stream)
        assert status == 200, body
        if stream:
            shown = body["text"].split(": x-usage-cost ")[1].split("\n")[0]
        else:
            shown = headers["x-usage-cost"]
        return shown, await gw.record(key, headers["x-request-id"])

    rich, key = await gw.account(topup="1.00")
    shown, rec = await charge(key)
    assert parse_usd(rec["held"]) < full
    assert (shown, rec["cost"], rec["shortfall"]) == (format_usd(full),) * 2 + ("0.00",), rec
    assert rec["anomalies"] == []  # a long reply within the model's ceiling is no anomaly
    assert parse_usd((await gw.wallet(rich))["balance"]) == parse_usd("1.00") - full

    poor, key = await gw.account(topup="0.001")  # covers the hold, not the reply
    shown, rec = await charge(key)
    assert (shown, rec["cost"]) == ("0.001", "0.001"), rec
    assert rec["shortfall"] == format_usd(full - parse_usd("0.001")), rec
    wallet = await gw.wallet(poor)
    assert (wallet["balance"], wallet["held"]) == ("0.00", "0.00")
    counted = gw.registry.get_sample_value("tollgate_strict_shortfall_usd_total")
    assert counted == pytest.approx((full - parse_usd("0.001")) / 1e9)

    postpaid, key = await gw.account(topup="0.001", hold_policy="postpaid")
    shown, rec = await charge(key)
    assert (shown, rec["shortfall"]) == (format_usd(full), "0.00"), rec
    assert (await gw.wallet(postpaid))["balance"] == format_usd(parse_usd("0.001") - full)


async def test_the_refusal_says_what_the_request_may_cost_and_how_max_tokens_lowers_it(
    make_gateway: GatewayFactory, upstream: FakeUpstream, counter: TokenCounter
) -> None:
    gw = await cheap_gateway(make_gateway)
    _, key = await gw.account(topup="0.0001")
    status, body, headers = await chat(gw, key)
    assert status == 403 and "x-request-id" in headers
    error = body["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "insufficient_quota", "insufficient_balance", None)  # fmt: skip
    held = format_usd(cost(CHEAP, prompt(counter), 1024))
    assert error["message"].startswith(
        f"Your balance is 0.0001 USD, and this request may cost up to {held} USD (its prompt "
        "plus up to 1024 output tokens); set max_tokens to hold less."), error  # fmt: skip
    status, body, _ = await chat(gw, key, max_tokens=500)
    assert "(its prompt plus up to 500 output tokens); set a lower max_tokens" in str(body)
    status, body, _ = await chat(gw, key, path="/v1/responses", input="hi", messages=None)
    assert status == 403 and "set max_output_tokens to hold less" in str(body), body
    status, body, _ = await chat(gw, key, path="/v1/embeddings", input="hi " * 50_000,
                                 model="text-embedding-3-small", messages=None)  # fmt: skip
    assert status == 403 and "max_tokens" not in str(body) and "Top up" in str(body), body
    assert upstream.requests == []
