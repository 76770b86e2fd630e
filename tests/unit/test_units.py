"""Cost in images and audio minutes (the stand-in until pricing prices these units)."""

from __future__ import annotations

import pytest

from gateway.endpoints.units import UnitUsage, cost
from pricing import ModelPrice, Usage

DALLE = ModelPrice(
    model="dall-e-3", per_image={"1024x1024": 40_000_000, "1024x1024/hd": 80_000_000}
)
WHISPER = ModelPrice(model="whisper-1", per_audio_minute=6_000_000)


def test_images_cost_their_variant_times_the_count() -> None:
    assert cost(UnitUsage(images=3, image_variant="1024x1024"), DALLE) == 120_000_000
    assert cost(UnitUsage(images=1, image_variant="1024x1024/hd"), DALLE) == 80_000_000
    assert cost(UnitUsage(images=0, image_variant="1024x1024/hd"), DALLE) == 0
    assert cost(UnitUsage(images=2, image_variant="512x512"), DALLE) == 0  # refused earlier


@pytest.mark.parametrize(
    ("ms", "nanodollars"),
    [
        (60_000, 6_000_000),
        (2_500, 250_000),  # 2500 * 6_000_000 / 60_000, exact
        (1, 100),
        (7, 700),
        (0, 0),
    ],
)
def test_audio_is_priced_by_the_millisecond(ms: int, nanodollars: int) -> None:
    assert cost(UnitUsage(audio_ms=ms), WHISPER) == nanodollars


def test_audio_rounds_up_once() -> None:
    odd = ModelPrice(model="w", per_audio_minute=7)  # 7 nanodollars a minute
    # 1 ms = 7/60000 of a nanodollar: rounds up to 1; 60001 ms = 7.0001..: rounds up to 8.
    assert cost(UnitUsage(audio_ms=1), odd) == 1
    assert cost(UnitUsage(audio_ms=60_001), odd) == 8


def test_plain_token_usage_is_compute_cost() -> None:
    price = ModelPrice(model="m", input=150_000_000, output=600_000_000, per_request=5)
    assert cost(Usage(input_tokens=100, output_tokens=10), price) == 21_000 + 5


@pytest.mark.parametrize(
    "fields", [{"images": -1}, {"audio_ms": -5}, {"images": True}, {"audio_ms": 1.5}]
)
def test_unit_usage_refuses_bad_counts(fields: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        UnitUsage(**fields)  # type: ignore[arg-type]
