"""compute_cost on non-token units: images by variant, audio by the millisecond, one rounding."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from fractions import Fraction

import pytest

from pricing import ModelPrice, PriceNotFound, Usage, compute_cost, parse_pricing, parse_usd

DALL_E_3 = ModelPrice(
    model="dall-e-3", per_image={"1024x1024": 40_000_000, "1024x1024/hd": 80_000_000}
)
WHISPER_1 = ModelPrice(model="whisper-1", per_audio_minute=6_000_000)  # 0.006 USD per minute


def images(n: int, variant: str) -> Usage:
    return Usage(images=n, image_variant=variant)


def test_images_standard_and_hd() -> None:
    assert compute_cost(images(1, "1024x1024"), DALL_E_3) == 40_000_000  # 0.04
    assert compute_cost(images(3, "1024x1024"), DALL_E_3) == 120_000_000  # 3 x 0.04 = 0.12
    assert compute_cost(images(2, "1024x1024/hd"), DALL_E_3) == 160_000_000  # 2 x 0.08 = 0.16


def test_standard_quality_and_no_quality_are_the_same_variant() -> None:
    assert compute_cost(images(2, "1024x1024/standard"), DALL_E_3) == 80_000_000
    spelt_out = ModelPrice(model="d", per_image={"1024x1024/standard": 40_000_000})
    assert compute_cost(images(2, "1024x1024"), spelt_out) == 80_000_000


@pytest.mark.parametrize(
    ("variant", "wanted"),
    [
        ("1792x1024", "for '1792x1024'"),
        ("1792x1024/hd", "for '1792x1024/hd'"),
        ("1024x1024/low", "for '1024x1024/low'"),  # only "standard" falls back to the bare size
        ("1024x1024/HD", "for '1024x1024/HD'"),  # keys are exact; the endpoint normalises
        ("", "without an image size"),
    ],
)
def test_unpriced_image_variant_is_refused_naming_model_and_variant(
    variant: str, wanted: str
) -> None:
    with pytest.raises(PriceNotFound) as caught:
        compute_cost(images(1, variant), DALL_E_3)
    assert str(caught.value) == (
        f"model 'dall-e-3' has no per-image price {wanted}; priced: 1024x1024, 1024x1024/hd"
    )


def test_price_not_found_is_a_lookup_error() -> None:
    assert issubclass(PriceNotFound, LookupError)
    with pytest.raises(LookupError):
        DALL_E_3.image_price("1x1")


def test_image_price_lookup_directly() -> None:
    assert DALL_E_3.image_price("1024x1024/hd") == 80_000_000
    assert DALL_E_3.image_price("1024x1024/standard") == 40_000_000
    with pytest.raises(PriceNotFound, match=r"^model 'whisper-1' has no per-image price$"):
        WHISPER_1.image_price("1024x1024")


def test_zero_images_need_no_price() -> None:
    assert compute_cost(images(0, "9x9"), DALL_E_3) == 0


def test_images_of_a_model_without_image_prices_cost_nothing() -> None:
    # Same rule as tokens on an image-only model: the endpoint checks the unit is priced.
    token_model = ModelPrice(model="gpt-image-1", input=5_000_000_000, output=40_000_000_000)
    usage = Usage(input_tokens=100, output_tokens=1000, images=1, image_variant="1024x1024")
    assert compute_cost(usage, token_model) == 100 * 5_000 + 1000 * 40_000


def test_audio_is_billed_on_the_exact_duration() -> None:
    # 0.006 USD/min x 61.5 s = 0.006 x 1.025 = 0.00615 USD, exactly.
    assert compute_cost(Usage(audio_ms=61_500), WHISPER_1) == 6_150_000
    assert compute_cost(Usage(audio_ms=60_000), WHISPER_1) == 6_000_000
    assert compute_cost(Usage(audio_ms=1), WHISPER_1) == 100  # 0.006 / 60000 = 1e-7 USD
    assert compute_cost(Usage(), WHISPER_1) == 0


def test_audio_rounds_up_to_a_whole_nanodollar() -> None:
    price = ModelPrice(model="a", per_audio_minute=6_100_000)  # 0.0061 USD/min
    assert compute_cost(Usage(audio_ms=1), price) == 102  # 101.67 -> 102
    assert compute_cost(Usage(audio_ms=3), price) == 305  # exact
    thirds = ModelPrice(model="a", per_audio_minute=20_000)  # 1/3 nanodollar per ms
    assert [compute_cost(Usage(audio_ms=ms), thirds) for ms in (1, 2, 3, 4)] == [1, 1, 1, 2]


def test_one_rounding_across_tokens_and_audio() -> None:
    # 1 token at 0.5 nanodollar + 1 ms at 0.5 nanodollar: ceil(1.0) = 1, not ceil + ceil = 2.
    price = ModelPrice(model="m", input=500_000, per_audio_minute=30_000)
    assert compute_cost(Usage(input_tokens=1, audio_ms=1), price) == 1
    assert compute_cost(Usage(input_tokens=1), price) == 1
    assert compute_cost(Usage(audio_ms=1), price) == 1


def test_whole_units_add_without_rounding() -> None:
    price = ModelPrice(
        model="m",
        input=500_000,
        per_audio_minute=30_000,
        per_image={"512x512": 7},
        per_request=11,
    )
    usage = Usage(input_tokens=1, audio_ms=1, images=2, image_variant="512x512")
    assert compute_cost(usage, price) == 1 + 2 * 7 + 11


def test_prices_from_the_file_give_the_same_costs() -> None:
    table = parse_pricing(
        'models:\n  dall-e-3: {per_image: {"1024x1024": 0.04, "1024x1024/hd": 0.08}}\n'
        "  whisper-1: {per_audio_minute: 0.006}\n",
        source="t",
    )
    assert table.models["dall-e-3"] == DALL_E_3
    assert table.models["whisper-1"] == WHISPER_1


def test_cost_of_every_unit_matches_an_independent_fraction_computation() -> None:
    rng = random.Random(4321)
    for _ in range(500):
        texts = {name: _price_text(rng) for name in ("in", "out", "audio", "img")}
        usd = {name: Fraction(Decimal(text)) for name, text in texts.items()}
        price = ModelPrice(
            model="m",
            input=parse_usd(texts["in"]),
            output=parse_usd(texts["out"]),
            per_audio_minute=parse_usd(texts["audio"]),
            per_image={"1024x1024": parse_usd(texts["img"])},
        )
        usage = Usage(
            input_tokens=rng.randrange(0, 2_000_000),
            output_tokens=rng.randrange(0, 200_000),
            audio_ms=rng.randrange(0, 10_000_000),
            images=rng.randrange(0, 5),
            image_variant="1024x1024",
        )
        exact_usd = (
            (usage.input_tokens * usd["in"] + usage.output_tokens * usd["out"]) / 10**6
            + usd["audio"] * Fraction(usage.audio_ms, 60_000)
            + usd["img"] * usage.images
        )
        assert compute_cost(usage, price) == math.ceil(exact_usd * 10**9)


def _price_text(rng: random.Random) -> str:
    places = rng.randrange(0, 10)
    fraction = "".join(rng.choice("0123456789") for _ in range(places))
    whole = rng.choice([0, 0, 1, 3, 15])
    return f"{whole}.{fraction}" if fraction else str(whole)
