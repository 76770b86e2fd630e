"""compute_cost: exact integer cost, rounded up once per request."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from fractions import Fraction

import pytest

from pricing import ModelPrice, Usage, compute_cost, parse_pricing, parse_usd

GPT_4O_MINI = ModelPrice(
    model="gpt-4o-mini", input=150_000_000, output=600_000_000, cache_read=75_000_000
)


def test_hand_computed_gpt_4o_mini() -> None:
    usage = Usage(input_tokens=1000, cache_read_tokens=200, output_tokens=500)
    # 1000*150e6 + 200*75e6 + 500*600e6 = 465e9 (units of 1e-15 USD) -> 465_000 nanodollars
    assert compute_cost(usage, GPT_4O_MINI) == 465_000


def test_prices_from_the_file_give_the_same_cost() -> None:
    table = parse_pricing(
        "models: {gpt-4o-mini: {input: 0.15, output: 0.60, cache_read: 0.075}}", source="t"
    )
    price = table.lookup("gpt-4o-mini")
    assert price == GPT_4O_MINI
    usage = Usage(input_tokens=1000, cache_read_tokens=200, output_tokens=500)
    assert compute_cost(usage, price) == 465_000


def test_rounds_up_to_a_whole_nanodollar() -> None:
    price = ModelPrice(model="m", input=37_500_000)  # 0.0375 USD per 1M tokens
    assert compute_cost(Usage(input_tokens=1), price) == 38  # 37.5 -> 38
    assert compute_cost(Usage(input_tokens=2), price) == 75  # exact, no rounding


def test_rounds_once_for_the_whole_request_not_per_bucket() -> None:
    price = ModelPrice(model="m", input=500_000, output=500_000)  # 0.0005 nanodollar per token
    # Per bucket this would be ceil(0.5) + ceil(0.5) = 2; once it is ceil(1.0) = 1.
    assert compute_cost(Usage(input_tokens=1, output_tokens=1), price) == 1


def test_zero_usage_costs_nothing() -> None:
    assert compute_cost(Usage(), GPT_4O_MINI) == 0


def test_per_request_is_flat() -> None:
    price = ModelPrice(model="flat", per_request=2_000_000)  # 0.002 USD
    assert compute_cost(Usage(), price) == 2_000_000
    assert compute_cost(Usage(input_tokens=10**6, output_tokens=10**6), price) == 2_000_000
    assert compute_cost(Usage(), price, requests=3) == 6_000_000
    assert compute_cost(Usage(), price, requests=0) == 0


def test_per_request_adds_to_token_cost() -> None:
    price = ModelPrice(model="m", input=1_000_000_000, per_request=7)
    assert compute_cost(Usage(input_tokens=1), price) == 1000 + 7


def test_cache_prices_fall_back_to_input() -> None:
    price = ModelPrice(model="m", input=3_000_000_000, output=15_000_000_000)
    usage = Usage(cache_read_tokens=100, cache_write_tokens=10)
    assert compute_cost(usage, price) == 110 * 3000


def test_cache_write_price_used_when_set() -> None:
    price = ModelPrice(
        model="claude",
        input=3_000_000_000,
        output=15_000_000_000,
        cache_read=300_000_000,
        cache_write=3_750_000_000,
    )
    usage = Usage(input_tokens=10, output_tokens=20, cache_read_tokens=1000, cache_write_tokens=100)
    expected = (10 * 3_000_000_000 + 20 * 15_000_000_000 + 1000 * 300_000_000) + 100 * 3_750_000_000
    assert compute_cost(usage, price) == expected // 10**6
    assert expected % 10**6 == 0


def test_reasoning_tokens_are_not_billed_twice() -> None:
    with_breakdown = Usage(output_tokens=100, reasoning_tokens=80)
    without = Usage(output_tokens=100)
    assert compute_cost(with_breakdown, GPT_4O_MINI) == compute_cost(without, GPT_4O_MINI)


def test_missing_prices_count_as_zero() -> None:
    price = ModelPrice(model="img", per_image={"1024x1024": 40_000_000})
    assert compute_cost(Usage(input_tokens=100, output_tokens=100), price) == 0


def test_negative_requests_refused() -> None:
    with pytest.raises(ValueError, match="requests"):
        compute_cost(Usage(), GPT_4O_MINI, requests=-1)


def test_usage_refuses_negative_and_non_int_counts() -> None:
    with pytest.raises(ValueError, match=r"Usage\.input_tokens must not be negative"):
        Usage(input_tokens=-1)
    with pytest.raises(TypeError, match=r"Usage\.output_tokens must be an int"):
        Usage(output_tokens=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Usage(cache_read_tokens=True)


def test_usage_total_and_sum() -> None:
    a = Usage(
        input_tokens=1,
        output_tokens=2,
        cache_read_tokens=3,
        cache_write_tokens=4,
        reasoning_tokens=1,
    )
    b = Usage(
        input_tokens=10,
        output_tokens=20,
        cache_read_tokens=30,
        cache_write_tokens=40,
        reasoning_tokens=5,
    )
    assert a.total_tokens == 10
    assert a + b == Usage(11, 22, 33, 44, 6)
    assert (a + b).total_tokens == 110
    assert sum([a, b], Usage()) == a + b


def _random_price_text(rng: random.Random) -> str:
    whole = rng.choice([0, 0, 1, 3, 15, 75, 600])
    places = rng.randrange(0, 10)
    fraction = "".join(rng.choice("0123456789") for _ in range(places))
    return f"{whole}.{fraction}" if fraction else str(whole)


def test_cost_matches_an_independent_fraction_computation() -> None:
    rng = random.Random(1234)
    for _ in range(500):
        texts = {name: _random_price_text(rng) for name in ("input", "output", "cr", "cw", "req")}
        has_cache_read = rng.random() < 0.5
        has_cache_write = rng.random() < 0.5
        has_per_request = rng.random() < 0.3
        price = ModelPrice(
            model="m",
            input=parse_usd(texts["input"]),
            output=parse_usd(texts["output"]),
            cache_read=parse_usd(texts["cr"]) if has_cache_read else None,
            cache_write=parse_usd(texts["cw"]) if has_cache_write else None,
            per_request=parse_usd(texts["req"]) if has_per_request else None,
        )
        usage = Usage(
            input_tokens=rng.randrange(0, 2_000_000),
            output_tokens=rng.randrange(0, 200_000),
            cache_read_tokens=rng.randrange(0, 1_000_000),
            cache_write_tokens=rng.randrange(0, 100_000),
        )
        requests = rng.randrange(0, 4)

        usd = {name: Fraction(Decimal(text)) for name, text in texts.items()}
        cache_read_usd = usd["cr"] if has_cache_read else usd["input"]
        cache_write_usd = usd["cw"] if has_cache_write else usd["input"]
        token_usd = (
            usage.input_tokens * usd["input"]
            + usage.output_tokens * usd["output"]
            + usage.cache_read_tokens * cache_read_usd
            + usage.cache_write_tokens * cache_write_usd
        ) / 10**6
        expected = math.ceil(token_usd * 10**9)
        if has_per_request:
            expected += int(usd["req"] * 10**9) * requests

        assert compute_cost(usage, price, requests=requests) == expected


SONNET = ModelPrice(
    model="claude-sonnet-4-5",
    input=3_000_000_000,
    output=15_000_000_000,
    cache_read=300_000_000,
    cache_write=3_750_000_000,
    cache_write_1h=6_000_000_000,
)


def test_one_hour_cache_writes_have_their_own_price() -> None:
    usage = Usage(cache_write_tokens=1000, cache_write_1h_tokens=1000)
    # 1000 x 3.75 + 1000 x 6.00 = 9750 (x 1e-6 USD)
    assert compute_cost(usage, SONNET) == 9_750_000


def test_one_hour_cache_write_falls_back_to_cache_write_then_input() -> None:
    usage = Usage(cache_write_1h_tokens=1000)
    no_1h = ModelPrice(model="m", input=3_000_000_000, cache_write=3_750_000_000)
    assert compute_cost(usage, no_1h) == 3_750_000
    no_cache_prices = ModelPrice(model="m", input=3_000_000_000)
    assert compute_cost(usage, no_cache_prices) == 3_000_000


def test_one_rounding_across_every_token_bucket() -> None:
    # Five buckets of 0.2 nanodollar each: ceil(1.0) = 1, never 5.
    price = ModelPrice(
        model="m",
        input=200_000,
        output=200_000,
        cache_read=200_000,
        cache_write=200_000,
        cache_write_1h=200_000,
    )
    usage = Usage(1, 1, 1, 1, cache_write_1h_tokens=1)
    assert compute_cost(usage, price) == 1


def test_usage_totals_count_tokens_only() -> None:
    usage = Usage(
        input_tokens=1,
        output_tokens=2,
        cache_read_tokens=3,
        cache_write_tokens=4,
        reasoning_tokens=2,
        cache_write_1h_tokens=5,
        images=6,
        image_variant="1024x1024",
        audio_ms=7000,
    )
    assert usage.prompt_tokens == 1 + 3 + 4 + 5
    assert usage.total_tokens == 15


def test_usage_sum_keeps_one_image_variant() -> None:
    a = Usage(images=1, image_variant="1024x1024/hd", audio_ms=5, cache_write_1h_tokens=2)
    b = Usage(images=2, audio_ms=7, cache_write_1h_tokens=3)
    total = Usage(images=3, image_variant="1024x1024/hd", audio_ms=12, cache_write_1h_tokens=5)
    assert a + b == total
    assert b + a == total
    assert a + a == Usage(
        images=2, image_variant="1024x1024/hd", audio_ms=10, cache_write_1h_tokens=4
    )
    with pytest.raises(ValueError, match="different image variants"):
        _ = a + Usage(images=1, image_variant="1024x1024")


def test_usage_refuses_bad_non_token_counts() -> None:
    with pytest.raises(ValueError, match=r"Usage\.images must not be negative"):
        Usage(images=-1)
    with pytest.raises(ValueError, match=r"Usage\.audio_ms must not be negative"):
        Usage(audio_ms=-1)
    with pytest.raises(ValueError, match=r"Usage\.cache_write_1h_tokens must not be negative"):
        Usage(cache_write_1h_tokens=-1)
    with pytest.raises(TypeError, match=r"Usage\.audio_ms must be an int"):
        Usage(audio_ms=61.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Usage\.image_variant must be a str"):
        Usage(image_variant=None)  # type: ignore[arg-type]
