"""An Anthropic-routed model needs cache prices (charging cache reads at the input price is ten
times Anthropic's price), unless it says ``cache_at_input: true``; ``pricing check``,
``config check`` and ``import-litellm`` agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.config_check import anthropic_billed, config_problems
from gateway.cli.pricing import pricing_command
from pricing import ModelPrice, Usage, compute_cost
from pricing.checks import claude_named, missing_cache_prices
from pricing.litellm import convert_litellm
from tests.support.pricing_errors import pricing_error
from tests.unit.test_config_check import MOCK, settings, table


def test_a_claude_model_without_cache_prices_is_a_problem_for_pricing_check() -> None:
    prices = table(
        "  claude-a: {input: 3, output: 15}\n"
        "  claude-b: {input: 3, output: 15, cache_read: 0.3}\n"
        "  claude-c: {input: 3, output: 15, cache_at_input: true}\n"
        "  claude-d: {input: 3, output: 15, cache_read: 0.3, cache_write: 3.75}\n"
        "  claude-e: {per_request: 0.01}\n"
        "  gpt-4o: {input: 2.5, output: 10}\n"
        "  '*': {input: 1}\n"
    )
    problems = missing_cache_prices(prices, claude_named)
    assert [p.split(":")[1].strip() for p in problems] == [
        "models.*", "models.claude-a", "models.claude-b"
    ]  # fmt: skip
    assert problems[1] == (
        "p.yaml: models.claude-a: is named claude-* (an Anthropic model) but has no cache_read "
        "or cache_write price; Anthropic bills cached tokens apart from input: set cache_read "
        "and cache_write, or cache_at_input: true to bill them at the input price"
    )
    assert "has no cache_write price" in problems[2]


def test_scheduled_prices_are_checked_too() -> None:
    prices = table("  claude-a:\n    - {input: 3, cache_read: 0.3, cache_write: 3.75}\n"
                   "    - {effective_from: 2099-01-01, input: 4}\n")  # fmt: skip
    assert [p.split(": ")[1] for p in missing_cache_prices(prices, claude_named)] == [
        "models.claude-a from 2099-01-01T00:00:00Z"
    ]


def test_with_a_config_the_routes_decide_what_anthropic_bills() -> None:
    gw = settings(providers=[
        MOCK,
        {"name": "bedrock", "kind": "anthropic", "api_key": "k", "models": ["sonnet-*"]},
    ])  # fmt: skip
    prices = table("  sonnet-x: {input: 3}\n  mock-claude: {input: 3}\n  '*': {input: 1}\n")
    assert anthropic_billed("sonnet-x", gw.providers) == (
        "is routed to the Anthropic provider 'bedrock'"
    )
    assert anthropic_billed("mock-claude", gw.providers) is None
    assert anthropic_billed("*", gw.providers) is not None
    assert anthropic_billed("mock-*", gw.providers) is None  # the mock takes them all first
    problems = config_problems(gw, prices)
    assert [p.split(": ")[1] for p in problems] == ["models.*", "models.sonnet-x"]


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("{input: 3, cache_at_input: true, cache_read: 0.3}",
         "models.m.cache_read: contradicts cache_at_input: true"),
        ("{input: 3, cache_at_input: yes please}",
         "models.m.cache_at_input: must be true or false"),
        ("{output: 3, cache_at_input: true}", "models.m.cache_at_input: needs an input price"),
        ("{input: 3, cache_at_input: true, tiers: [{above: 10, input: 6, cache_write: 1}]}",
         "models.m.tiers[0].cache_write: contradicts the model's cache_at_input: true"),
    ],
)  # fmt: skip
def test_cache_at_input_is_checked(spec: str, problem: str) -> None:
    assert pricing_error(f"models:\n  m: {spec}\n").startswith(f"p.yaml: {problem}")


def test_cache_at_input_bills_every_cached_token_at_the_input_price() -> None:
    price = table("  m: {input: 3, output: 15, cache_at_input: true}\n").models["m"]
    assert price.cache_at_input
    usage = Usage(input_tokens=100, cache_read_tokens=200, cache_write_tokens=300,
                  cache_write_1h_tokens=400, output_tokens=10)  # fmt: skip
    as_input = Usage(input_tokens=1000, output_tokens=10)
    assert compute_cost(usage, price) == compute_cost(as_input, price) == 3_150_000
    # The flag alone decides: a price object that somehow carries both bills cache as input.
    both = ModelPrice(model="m", input=3 * 10**9, cache_read=1, cache_at_input=True)
    assert compute_cost(Usage(cache_read_tokens=10**6), both) == 3 * 10**9


def test_pricing_check_refuses_then_accepts_with_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pricing.yaml"
    path.write_text("models:\n  claude-x: {input: 3, output: 15}\n")
    assert pricing_command(["check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"tollgate: {path}: models.claude-x: is named claude-*")
    path.write_text("models:\n  claude-x: {input: 3, output: 15, cache_at_input: true}\n")
    assert pricing_command(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[1] == (
        "claude-x: per 1M tokens: input 3.00, output 15.00; cached tokens at the input price"
    )


def test_pricing_check_refuses_a_shadowed_glob(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pricing.yaml"
    path.write_text("models:\n  gpt*: {input: 1}\n  '*gpt*': {input: 2}\n")
    assert pricing_command(["check", str(path)]) == 2
    assert f"{path}: models.gpt*: can never price a model" in capsys.readouterr().err


def test_import_litellm_skips_a_claude_model_without_cache_prices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """So that what it writes still passes ``tollgate pricing check``."""
    converted = convert_litellm(
        '{"claude-2.1": {"input_cost_per_token": 8e-06, "output_cost_per_token": 2.4e-05},'
        ' "claude-x": {"input_cost_per_token": 3e-06, "cache_read_input_token_cost": 3e-07,'
        ' "cache_creation_input_token_cost": 3.75e-06}}',
        source="litellm.json",
    )
    assert converted.skipped == {"an Anthropic model without cache_read and cache_write prices": 1}
    path = tmp_path / "pricing.yaml"
    path.write_text(converted.text)
    assert pricing_command(["check", str(path)]) == 0, capsys.readouterr().err
