"""Long-context tiers: parsed strictly, and applied to the whole request above the line."""

from __future__ import annotations

import pytest

from pricing import ModelPrice, PriceTier, PricingError, Usage, compute_cost, parse_pricing

SONNET_YAML = """\
models:
  claude-sonnet-4-5:
    input: 3.00
    output: 15.00
    cache_read: 0.30
    cache_write: 3.75
    cache_write_1h: 6.00
    tiers:
      - {above: 200000, input: 6.00, output: 22.50, cache_read: 0.60, cache_write: 7.50,
         cache_write_1h: 12.00}
"""
SONNET_TIER = PriceTier(
    above=200_000,
    input=6_000_000_000,
    output=22_500_000_000,
    cache_read=600_000_000,
    cache_write=7_500_000_000,
    cache_write_1h=12_000_000_000,
)
SONNET = ModelPrice(
    model="claude-sonnet-4-5",
    input=3_000_000_000,
    output=15_000_000_000,
    cache_read=300_000_000,
    cache_write=3_750_000_000,
    cache_write_1h=6_000_000_000,
    tiers=(SONNET_TIER,),
)


def test_tier_parses_to_exact_integers() -> None:
    assert parse_pricing(SONNET_YAML, source="p.yaml").models["claude-sonnet-4-5"] == SONNET


def test_at_the_boundary_the_base_price_applies() -> None:
    # 150,000 input + 50,000 cache read = 200,000: not *above* 200,000.
    usage = Usage(input_tokens=150_000, cache_read_tokens=50_000, output_tokens=1000)
    # 150000 x 3.00 + 50000 x 0.30 + 1000 x 15.00 = 450 000 + 15 000 + 15 000 (x 1e-6 USD)
    assert compute_cost(usage, SONNET) == 480_000_000  # 0.48 USD


def test_below_the_boundary_the_base_price_applies() -> None:
    usage = Usage(input_tokens=149_999, cache_read_tokens=50_000, output_tokens=1000)
    assert compute_cost(usage, SONNET) == 479_997_000  # 0.479997 USD


def test_above_the_boundary_the_tier_prices_the_whole_request() -> None:
    usage = Usage(input_tokens=150_001, cache_read_tokens=50_000, output_tokens=1000)
    # 150001 x 6.00 + 50000 x 0.60 + 1000 x 22.50 = 900 006 + 30 000 + 22 500 (x 1e-6 USD)
    assert compute_cost(usage, SONNET) == 952_506_000  # 0.952506 USD


def test_prompt_size_counts_cache_writes_but_not_output() -> None:
    writes = Usage(input_tokens=100_000, cache_write_tokens=50_000, cache_write_1h_tokens=50_001)
    assert writes.prompt_tokens == 200_001
    # 100000 x 6.00 + 50000 x 7.50 + 50001 x 12.00 = 600 000 + 375 000 + 600 012
    assert compute_cost(writes, SONNET) == 1_575_012_000
    long_answer = Usage(input_tokens=200_000, output_tokens=100_000)
    assert compute_cost(long_answer, SONNET) == 200_000 * 3_000 + 100_000 * 15_000


def test_highest_matching_tier_applies() -> None:
    table = parse_pricing(
        "models:\n  m:\n    input: 1\n    tiers:\n"
        "      - {above: 100, input: 2}\n      - {above: 1000, input: 4}\n",
        source="p.yaml",
    )
    price = table.models["m"]
    cost = {n: compute_cost(Usage(input_tokens=n), price) for n in (100, 101, 1000, 1001)}
    # per token: 1, 2, 2, 4 USD per 1M = 1000, 2000, 2000, 4000 nanodollars
    assert cost == {100: 100_000, 101: 202_000, 1000: 2_000_000, 1001: 4_004_000}


def test_for_prompt_returns_final_prices() -> None:
    assert SONNET.for_prompt(200_000) is SONNET
    tiered = SONNET.for_prompt(200_001)
    assert tiered.tiers == ()
    assert (tiered.input, tiered.output, tiered.cache_write_1h) == (
        6_000_000_000,
        22_500_000_000,
        12_000_000_000,
    )
    assert tiered.max_output_tokens == SONNET.max_output_tokens
    assert tiered.for_prompt(10) is tiered


def test_tier_cache_prices_fall_back_to_the_tiers_input() -> None:
    price = parse_pricing(
        "models:\n  m: {input: 1, tiers: [{above: 10, input: 2}]}\n", source="p.yaml"
    ).models["m"]
    usage = Usage(cache_read_tokens=11, cache_write_tokens=1, cache_write_1h_tokens=1)
    assert compute_cost(usage, price) == 13 * 2_000


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ("[]", "tiers: must be a list of tiers like [{above: 200000, input: 6.00,"),
        ("{above: 1, input: 2}", "tiers: must be a list of tiers"),
        ("[5]", "tiers[0]: must be a mapping like {above: 200000"),
        (
            "[{above: 10, input: 2, output: 3, cache_reed: 1}]",
            "tiers[0].cache_reed: unknown field; expected one of above, input, output, "
            "cache_read, cache_write, cache_write_1h",
        ),
        ("[{above: 10, input: 2, per_request: 1}]", "tiers[0].per_request: unknown field;"),
        ("[{input: 2, output: 3}]", "tiers[0].above: missing; the prompt size it applies above"),
        ("[{above: 0, input: 2, output: 3}]", "tiers[0].above: must be a positive integer"),
        ("[{above: -5, input: 2, output: 3}]", "tiers[0].above: must be a positive integer"),
        ("[{above: 1.5, input: 2, output: 3}]", "tiers[0].above: must be a positive integer"),
        ("[{above: 200k, input: 2, output: 3}]", "tiers[0].above: must be a positive integer"),
        ("[{above: true, input: 2, output: 3}]", "tiers[0].above: must be a positive integer"),
        ("[{above: 10, input: -2, output: 3}]", "tiers[0].input: must not be negative"),
        (
            "[{above: 10, input: '2', output: 3}]",
            "tiers[0].input: must be a number (USD per 1M tokens)",
        ),
        ("[{above: 10, input: .nan, output: 3}]", "tiers[0].input: is not a finite price"),
        (
            "[{above: 10, input: 2}]",
            "tiers[0].output: missing; the model sets output, so each tier must",
        ),
        (
            "[{above: 10, input: 2, output: 3}, {above: 20, input: 4, output: x}]",
            "tiers[1].output: must be a number (USD per 1M tokens)",
        ),
        (
            "[{above: 20, input: 2, output: 3}, {above: 20, input: 4, output: 5}]",
            "tiers[1].above: must be greater than the previous tier's (20); list tiers from",
        ),
    ],
)
def test_tier_errors_name_model_tier_and_field(tiers: str, message: str) -> None:
    text = f"models:\n  m: {{input: 1, output: 2, tiers: {tiers}}}\n"
    with pytest.raises(PricingError) as caught:
        parse_pricing(text, source="p.yaml")
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"p.yaml: models.m.{message}")


def test_a_tier_must_set_every_token_price_of_its_model() -> None:
    text = SONNET_YAML.replace(",\n         cache_write_1h: 12.00}", "}")
    with pytest.raises(PricingError) as caught:
        parse_pricing(text, source="p.yaml")
    assert str(caught.value) == (
        "p.yaml: models.claude-sonnet-4-5.tiers[0].cache_write_1h: missing; the model sets "
        "cache_write_1h, so each tier must (a tier replaces every token price)"
    )


def test_tiers_need_token_prices() -> None:
    text = 'models:\n  d: {per_image: {"1024x1024": 0.04}, tiers: [{above: 1, input: 1}]}\n'
    with pytest.raises(PricingError, match=r"^p\.yaml: models\.d\.tiers: only token prices"):
        parse_pricing(text, source="p.yaml")


def test_tiers_alone_are_no_price() -> None:
    with pytest.raises(PricingError, match=r"^p\.yaml: models\.m: has no price"):
        parse_pricing("models:\n  m: {tiers: [{above: 1, input: 1}]}\n", source="p.yaml")


def test_highest_tier_wins_even_if_built_unsorted() -> None:
    low, high = PriceTier(above=10, input=2), PriceTier(above=20, input=4)
    price = ModelPrice(model="m", input=1, tiers=(high, low))
    assert price.for_prompt(21).input == 4
    assert price.for_prompt(11).input == 2
    assert price.for_prompt(10) is price
