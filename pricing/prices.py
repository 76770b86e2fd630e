"""One model's prices, and the two rules that pick a price from them for one request.

* **Long-context tiers.** Some providers (Anthropic, Google) charge a different price for every
  token of a request whose prompt is above a size. A ``PriceTier`` holds those prices and
  ``ModelPrice.for_prompt`` swaps them in for the whole request, never only for the tokens
  above the line, because that is how those providers bill.
* **Scheduled prices.** ``effective_from`` is the instant an entry takes over from the one
  before it (``None`` for a model's base price); ``PriceTable.lookup`` picks the entry in force.
* **Image variants.** ``per_image`` is keyed by ``"<size>"`` or ``"<size>/<quality>"``;
  ``ModelPrice.image_price`` resolves a request's variant, treating ``"/standard"`` and no
  quality as the same thing, and raises ``PriceNotFound`` rather than guessing a price.

All prices are integer nanodollars; ``None`` means "not priced this way". Parsing and
validation live in ``pricing.parse``; arithmetic lives in ``pricing.cost``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

STANDARD_QUALITY = "standard"


class PriceNotFound(LookupError):
    """The model has a price table for a unit, but not for the variant a request asked for.

    Callers answer it with a 400: the request names something the operator has not priced,
    and forwarding it would either bill it at a guessed price or not at all.
    """


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Token prices (per 1M tokens) that apply when a request's prompt is above ``above``.

    Validation makes a tier set every token price its model sets, so applying it never mixes
    tier and base prices; a price left ``None`` falls back the same way as on the base.
    """

    above: int
    input: int | None = None
    output: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None
    cache_write_1h: int | None = None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's prices, all in integer nanodollars; ``None`` means "not priced this way".

    Token prices are per 1M tokens. ``model`` is the table key, which may be a glob pattern.
    ``cache_write`` is the price of a 5-minute cache write and ``cache_write_1h`` of a 1-hour
    one. ``per_image`` maps ``"1024x1024"`` or ``"1024x1024/hd"`` to a price per image; treat
    it as read-only. ``tiers`` are sorted by ``above``, lowest first. ``effective_from`` (aware,
    UTC) is when this entry of a price schedule starts; ``None`` on a model's base price.
    ``cache_at_input`` says the file chose to bill cached tokens at the input price (so it sets
    no cache price); without it a missing cache price falls back the same way, by default.
    ``hold_output_tokens`` is how many output tokens a request that sets no output limit of
    its own is held for (``None``: the gateway's ``hold_output_tokens`` setting decides).
    """

    model: str
    input: int | None = None
    output: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None
    per_request: int | None = None
    per_image: Mapping[str, int] | None = None
    per_audio_minute: int | None = None
    max_output_tokens: int | None = None
    cache_write_1h: int | None = None
    tiers: tuple[PriceTier, ...] = ()
    effective_from: datetime | None = None
    cache_at_input: bool = False
    hold_output_tokens: int | None = None

    @property
    def is_token_priced(self) -> bool:
        return self.input is not None or self.output is not None

    def for_prompt(self, prompt_tokens: int) -> ModelPrice:
        """The prices that apply to a request whose prompt has ``prompt_tokens`` tokens.

        The matching tier with the highest ``above`` (strictly below ``prompt_tokens``)
        replaces all five token prices; the result has no tiers left, so it is final. Without
        a matching tier this is ``self``.
        """
        matching = (tier for tier in self.tiers if prompt_tokens > tier.above)
        chosen = max(matching, key=lambda tier: tier.above, default=None)
        if chosen is None:
            return self
        return dataclasses.replace(
            self,
            input=chosen.input,
            output=chosen.output,
            cache_read=chosen.cache_read,
            cache_write=chosen.cache_write,
            cache_write_1h=chosen.cache_write_1h,
            tiers=(),
        )

    def image_price(self, variant: str) -> int:
        """The price of one image of ``variant`` (``"1024x1024"`` or ``"1024x1024/hd"``).

        Tries the exact key, then the same size with the standard quality spelt the other way
        (``"1024x1024/standard"`` <-> ``"1024x1024"``). Raises ``PriceNotFound`` naming the
        model and the variant when neither is priced.
        """
        prices = self.per_image or {}
        if variant in prices:
            return prices[variant]
        size, slash, quality = variant.partition("/")
        if slash and quality == STANDARD_QUALITY and size in prices:
            return prices[size]
        if not slash and variant and f"{variant}/{STANDARD_QUALITY}" in prices:
            return prices[f"{variant}/{STANDARD_QUALITY}"]
        if not prices:
            raise PriceNotFound(f"model {self.model!r} has no per-image price")
        wanted = f"for {variant!r}" if variant else "without an image size"
        raise PriceNotFound(
            f"model {self.model!r} has no per-image price {wanted}; "
            f"priced: {', '.join(sorted(prices))}"
        )
