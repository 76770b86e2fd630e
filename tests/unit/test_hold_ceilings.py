"""Hold ceilings (issue 18), the pure pieces: sizing a hold (``gateway.billing.holds``), and the
new fields as the plan, settings and pricing parsers, ``tollgate pricing check`` and
``tollgate config check`` read them. The gateway using them: tests/integration/
test_hold_ceilings.py."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gateway.apis import default_endpoints
from gateway.apis.tokens import TokenCounter
from gateway.billing.holds import HoldCeilings, affordable_output, size_hold
from gateway.billing.ledger import ChargeEntry, admission_field
from gateway.billing.plans import BUILT_IN, PlanError, parse_plans
from gateway.billing.records import pending_json
from gateway.cli.config_check import run_config
from gateway.cli.pricing import describe_model
from gateway.settings import ConfigError, parse_settings
from pricing import ModelPrice, PricingError, Usage, compute_cost, parse_pricing, parse_usd

COUNTER = TokenCounter()
ENDPOINTS = default_endpoints()
TABLE = parse_pricing(
    """
models:
  cheap: {input: 0.15, output: 0.60}
  capped: {input: 0.15, output: 0.60, max_output_tokens: 16384, hold_output_tokens: 256}
  flat: {per_request: 0.002, max_output_tokens: 100}
  embed: {input: 0.02}
  long: {input: 3, output: 15, tiers: [{above: 100, input: 6, output: 30}]}
  fine: {input: 0.0001, output: 0.0003, tiers: [{above: 100, input: 0.0007, output: 0.0011}]}
""",
    source="test",
)
GATEWAY = HoldCeilings(output_tokens=1024)
MESSAGES = [{"role": "user", "content": "hello there"}]


def price(model: str) -> ModelPrice:
    found = TABLE.lookup(model)
    assert found is not None
    return found


def hold_of(model: str, ceilings: HoldCeilings = GATEWAY, path: str = "/chat/completions",
            **fields: Any) -> tuple[Any, int]:  # fmt: skip
    """(the hold, the prompt the gateway estimates) of a request for ``model``."""
    endpoint = ENDPOINTS[path]
    body = {"model": model, "messages": MESSAGES, **fields}
    req = endpoint.parse(orjson.dumps(body), "application/json")
    held = size_hold(endpoint, req, price(model), COUNTER, default_output=4096, ceilings=ceilings)
    return held, COUNTER.estimate_prompt(req.payload, model)


def cost(model: str, input_tokens: int, output_tokens: int) -> int:
    return compute_cost(Usage(input_tokens=input_tokens, output_tokens=output_tokens),
                        price(model))  # fmt: skip


def test_without_max_tokens_the_hold_covers_hold_output_tokens() -> None:
    held, prompt = hold_of("cheap")
    assert held.usage == Usage(input_tokens=prompt, output_tokens=1024)
    assert held.amount == cost("cheap", prompt, 1024) and held.capped
    assert held.worst == Usage(input_tokens=prompt, output_tokens=4096)  # the default ceiling
    assert held.worst_cost == cost("cheap", prompt, 4096)
    held, _ = hold_of("cheap", n=3)
    assert (held.usage.output_tokens, held.worst.output_tokens) == (3 * 1024, 3 * 4096)


def test_an_explicit_limit_is_held_as_asked_even_above_the_models_ceiling() -> None:
    for field in ("max_tokens", "max_completion_tokens"):
        held, prompt = hold_of("cheap", **{field: 3000})
        assert held.usage == held.worst == Usage(input_tokens=prompt, output_tokens=3000)
        assert not held.capped
    held, _ = hold_of("cheap", path="/responses", input="hi", max_output_tokens=5000)
    assert held.usage.output_tokens == 5000 and not held.capped
    held, _ = hold_of("cheap", path="/messages", max_tokens=2000)
    assert held.usage.output_tokens == 2000 and not held.capped


def test_the_models_hold_output_tokens_wins_and_none_holds_the_whole_ceiling() -> None:
    held, _ = hold_of("capped")
    assert (held.usage.output_tokens, held.worst.output_tokens) == (256, 16384)
    held, _ = hold_of("capped", HoldCeilings(output_tokens=None))
    assert held.usage.output_tokens == 256
    held, _ = hold_of("cheap", HoldCeilings(output_tokens=None))
    assert held.usage.output_tokens == 4096 and not held.capped
    held, _ = hold_of("cheap", HoldCeilings(output_tokens=8000))  # above the ceiling: no effect
    assert held.usage.output_tokens == 4096 and not held.capped


def test_the_plans_usd_cap_holds_what_it_affords_but_never_less_than_the_prompt() -> None:
    usd = parse_usd("0.0002")
    held, prompt = hold_of("cheap", HoldCeilings(output_tokens=1024, usd=usd))
    out = held.usage.output_tokens
    assert held.amount <= usd < cost("cheap", prompt, out + 1) and 0 < out < 1024
    held, prompt = hold_of("cheap", HoldCeilings(output_tokens=1024, usd=1))
    assert held.usage.output_tokens == 0 and held.amount == cost("cheap", prompt, 0) > 1
    held, _ = hold_of("cheap", HoldCeilings(output_tokens=1024, usd=parse_usd("100")))
    assert held.usage.output_tokens == 1024  # the token ceiling is the smaller


def test_requests_billed_for_no_output_or_for_free_output_are_held_as_before() -> None:
    tight = HoldCeilings(output_tokens=1, usd=1)
    held, prompt = hold_of("embed", tight, path="/embeddings", input="hello there")
    assert held.usage == held.worst == Usage(input_tokens=prompt) and not held.capped
    held, _ = hold_of("flat", tight)  # per request: its output costs nothing
    assert held.amount == held.worst_cost == parse_usd("0.002") and not held.capped
    assert held.usage.output_tokens == 1  # the token ceiling still says what is held


@given(
    prompt=st.integers(0, 300),
    output=st.integers(1, 100_000),
    usd=st.integers(1, 10**7),
    model=st.sampled_from(["cheap", "long", "fine"]),
)
def test_affordable_output_is_the_most_that_fits(
    prompt: int, output: int, usd: int, model: str
) -> None:
    worst = Usage(input_tokens=prompt, output_tokens=output)
    n = affordable_output(worst, price(model), usd)
    prompt_cost = cost(model, prompt, 0)
    assert cost(model, prompt, n) <= max(usd, prompt_cost)  # never more held than the cap
    output_price = price(model).for_prompt(prompt).output or 0
    left = max(usd - prompt_cost, 0) * 10**6  # per 1M tokens, as prices are
    assert n * output_price <= left < (n + 1) * output_price
    if model != "fine":  # whole nanodollars a token: no rounding to leave unused
        assert cost(model, prompt, n + 1) > usd  # one more token does not fit


# -- the fields as the parsers read them ------------------------------------------------


def test_plan_hold_max_is_exact_usd_and_none_by_default() -> None:
    plans = parse_plans({"trial": {"hold_max": "0.05"}, "pro": {"hold_max": None}})
    assert plans["trial"].hold_max == parse_usd("0.05") == 50_000_000
    assert plans["trial"].to_json()["hold_max"] == "0.05"
    assert all(plan.hold_max == 0 for plan in BUILT_IN.values()) and plans["pro"].hold_max == 0


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0.05, 'plans.trial.hold_max: must be a USD amount as a string, e.g. "10.00"'),
        ("-1.00", "plans.trial.hold_max: must not be negative"),
        ("0", "plans.trial.hold_max: must be above 0 (null, or leaving it out: no cap)"),
        ("five", "plans.trial.hold_max: "),
        ("0.0000000001", "plans.trial.hold_max: "),
    ],
)
def test_a_bad_hold_max_is_one_line_naming_the_field(value: object, problem: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_plans({"trial": {"hold_max": value}})
    assert str(info.value).startswith(problem) and "\n" not in str(info.value)
    with pytest.raises(ConfigError) as config:
        parse_settings({"plans": {"trial": {"hold_max": value}}}, source="gw.yaml",
                       base_dir=Path("."), env={})  # fmt: skip
    assert str(config.value) == f"gw.yaml: {info.value}"


def test_settings_hold_output_tokens_defaults_to_1024_and_null_is_none() -> None:
    def parse(**fields: object) -> Any:
        return parse_settings(fields, source="gw.yaml", base_dir=Path("."), env={})

    assert parse().hold_output_tokens == 1024
    assert parse(hold_output_tokens=None).hold_output_tokens is None
    assert parse(hold_output_tokens=200).hold_output_tokens == 200
    for bad in (0, -5, 1.5, "1024", True):
        with pytest.raises(ConfigError) as info:
            parse(hold_output_tokens=bad)
        assert str(info.value) == "gw.yaml: hold_output_tokens: must be a positive whole number"


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "true", "'256'", "null"])
def test_a_bad_model_hold_output_tokens_is_one_line_naming_the_field(value: str) -> None:
    with pytest.raises(PricingError) as info:
        parse_pricing(f"models:\n  m: {{input: 1, hold_output_tokens: {value}}}\n", source="p")
    assert str(info.value) == "p: models.m.hold_output_tokens: must be a positive integer"


def test_pricing_check_shows_hold_output_tokens_beside_max_output_tokens() -> None:
    assert describe_model(price("capped")) == (
        "capped: per 1M tokens: input 0.15, output 0.60; max_output_tokens: 16384; "
        "hold_output_tokens: 256"
    )


def test_config_check_accepts_the_new_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pricing.yaml").write_text(
        "models:\n  mock-gpt: {input: 0.15, output: 0.60, hold_output_tokens: 512}\n"
    )
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "pricing_file": "pricing.yaml", "hold_output_tokens": 2048,
        "providers": [{"name": "mock", "kind": "mock", "models": ["mock-*"]}],
        "plans": {"trial": {"hold_max": "0.05"}},
    }))  # fmt: skip
    assert run_config(argparse.Namespace(config=str(config)), env={}) == 0, capsys.readouterr()


# -- the capped hold on the record ------------------------------------------------------


def test_the_record_shows_the_worst_case_of_a_capped_hold() -> None:
    x = admission_field("/chat/completions", False, "v1", None, 2_457_600)
    entry = ChargeEntry.from_fields("1-0", {"t": "charge", "x": x + "|1700000000000|616650"})
    assert (entry.endpoint, entry.created_ms, entry.hold) == ("/chat/completions",
                                                              1700000000000, 616650)  # fmt: skip
    view = entry.record_json()
    assert (view["held"], view["worst_case"]) == ("0.00061665", "0.0024576")
    pending = pending_json("req_1", {"status": "pending", "x": x, "hold": "616650"})
    assert (pending["held"], pending["worst_case"], pending["endpoint"]) == (
        "0.00061665", "0.0024576", "/chat/completions")  # fmt: skip


def test_entries_written_before_worst_case_read_as_held_in_full() -> None:
    old = "/chat/completions|1|v1||1700000000000|900"  # six parts, as settle_v7 wrote them
    entry = ChargeEntry.from_fields("1-0", {"t": "charge", "x": old})
    assert (entry.stream, entry.price_version, entry.created_ms, entry.hold) == (
        True, "v1", 1700000000000, 900)  # fmt: skip
    assert entry.worst_case == 900
    pending = pending_json("req_1", {"status": "pending", "x": "/chat/completions|0|v1|",
                                     "hold": "900"})  # fmt: skip
    assert (pending["endpoint"], pending["worst_case"]) == ("/chat/completions", "0.0000009")
