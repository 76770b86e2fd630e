"""The cost of a request: a pure function of (usage, price), exact to one nanodollar.

Prices are integer nanodollars, but per unit of different sizes: per 1M tokens, per minute of
audio (usage counts milliseconds, so 60,000 per price unit), per image, per request. Each
bucket's exact cost is a fraction ``count * price / per``; we put the fractions over one common
denominator (the lcm of the ``per`` values), add the integer numerators and divide **once**,
rounding up:

* once, not per bucket, because rounding each bucket would add up to one unit per bucket and
  make the charge depend on how the provider happened to split its usage;
* up, because the result is a whole nanodollar (it becomes the ``X-Usage-Cost`` header and the
  wallet charge, which must be equal) and a metering gateway must never under-charge; the most
  it over-charges is one nanodollar per request.

Images and requests are whole units already, so they add without rounding.
"""

from __future__ import annotations

import math

from pricing.prices import ModelPrice
from pricing.usage import Usage

_TOKENS_PER_PRICE = 1_000_000  # token prices are per 1M tokens
_MS_PER_PRICE = 60_000  # audio prices are per minute; usage counts milliseconds
_DENOMINATOR = math.lcm(_TOKENS_PER_PRICE, _MS_PER_PRICE)
_TOKEN_SCALE = _DENOMINATOR // _TOKENS_PER_PRICE
_AUDIO_SCALE = _DENOMINATOR // _MS_PER_PRICE


def compute_cost(usage: Usage, price: ModelPrice, *, requests: int = 1) -> int:
    """Exact cost in nanodollars of ``usage`` at ``price``, plus ``per_request * requests``.

    The long-context tier that the prompt's size selects (``ModelPrice.for_prompt``) prices
    every token. Cached tokens fall back to the input price when the model has no separate
    cache price (1-hour writes to the 5-minute write price first), so a missing cache price
    never makes cached tokens free; ``cache_at_input`` states that choice in the file. A unit
    the model has no price for at all costs nothing; the endpoint checks beforehand that the
    model is priced in its unit. Raises ``PriceNotFound`` when ``usage.images`` is non-zero
    and the model's ``per_image`` table lacks ``usage.image_variant``.
    """
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < 0:
        raise ValueError(f"requests must be a non-negative int (got {requests!r})")
    price = price.for_prompt(usage.prompt_tokens)
    input_price = price.input or 0
    if price.cache_at_input:  # the file says so: every cached token bills as input
        cache_read_price = cache_write_price = cache_write_1h_price = input_price
    else:
        cache_read_price = price.cache_read if price.cache_read is not None else input_price
        cache_write_price = price.cache_write if price.cache_write is not None else input_price
        cache_write_1h_price = (
            price.cache_write_1h if price.cache_write_1h is not None else cache_write_price
        )
    token_numerator = (
        usage.input_tokens * input_price
        + usage.output_tokens * (price.output or 0)
        + usage.cache_read_tokens * cache_read_price
        + usage.cache_write_tokens * cache_write_price
        + usage.cache_write_1h_tokens * cache_write_1h_price
    )
    audio_numerator = usage.audio_ms * (price.per_audio_minute or 0)
    numerator = token_numerator * _TOKEN_SCALE + audio_numerator * _AUDIO_SCALE
    fractional_cost = -(-numerator // _DENOMINATOR)  # ceiling division on exact integers
    image_cost = 0
    if usage.images and price.per_image is not None:
        image_cost = usage.images * price.image_price(usage.image_variant)
    return fractional_cost + image_cost + (price.per_request or 0) * requests
