"""Usage and cost in the units that are not tokens: images and audio time.

A stand-in until ``pricing`` learns these units itself: ``UnitUsage`` carries the fields that
``pricing.Usage`` is gaining (``images``, ``image_variant``, ``audio_ms``) and ``cost`` adds
their price to ``compute_cost``'s. When ``pricing.Usage`` has them and ``compute_cost`` prices
``per_image`` and ``per_audio_minute``, replace ``UnitUsage(...)`` with ``Usage(...)`` and the
body of ``cost`` with ``return compute_cost(usage, price)``; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pricing import ModelPrice, Usage, compute_cost

MS_PER_MINUTE = 60_000


@dataclass(frozen=True, slots=True)
class UnitUsage(Usage):
    """Token usage plus images (of one ``image_variant``, e.g. ``"1024x1024/hd"``) and audio."""

    images: int = 0
    image_variant: str = ""
    audio_ms: int = 0

    def __post_init__(self) -> None:
        for name in ("input_tokens", "output_tokens", "cache_read_tokens",
                     "cache_write_tokens", "reasoning_tokens", "images", "audio_ms"):  # fmt: skip
            count = getattr(self, name)
            if isinstance(count, bool) or not isinstance(count, int):
                raise TypeError(f"UnitUsage.{name} must be an int, not {type(count).__name__}")
            if count < 0:
                raise ValueError(f"UnitUsage.{name} must not be negative (got {count})")
        if not isinstance(self.image_variant, str):
            raise TypeError("UnitUsage.image_variant must be a str")


def image_price(price: ModelPrice, variant: str) -> int | None:
    """The price of one image of ``variant`` (``"1024x1024"`` or ``"1024x1024/hd"``)."""
    return price.per_image.get(variant) if price.per_image else None


def cost(usage: Usage, price: ModelPrice) -> int:
    """``compute_cost`` plus images and audio minutes, exact in integer nanodollars.

    Image prices are whole nanodollars, so only the audio term has a fraction; it is rounded up
    once, never per request part. An image variant with no price costs nothing here: endpoints
    refuse such a request before it is forwarded (400 ``model_not_priced``).
    """
    total = compute_cost(usage, price)
    if isinstance(usage, UnitUsage):
        if usage.images:
            total += usage.images * (image_price(price, usage.image_variant) or 0)
        if usage.audio_ms and price.per_audio_minute:
            total += -(-usage.audio_ms * price.per_audio_minute // MS_PER_MINUTE)
    return total
