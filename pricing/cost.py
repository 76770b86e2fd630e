"""The cost of a request: a pure function of (usage, price), exact to one nanodollar.

Token prices are integer nanodollars per 1M tokens, so ``tokens * price`` is an exact integer
in units of 1e-15 USD. We add the buckets up exactly and divide by 1M **once**, rounding up:

* once, not per bucket, because rounding each bucket would add up to one unit per bucket and
  make the charge depend on how the provider happened to split its tokens;
* up, because the result is a whole nanodollar (it becomes the ``X-Usage-Cost`` header and the
  wallet charge, which must be equal) and a metering gateway must never under-charge; the most
  it over-charges is one nanodollar per request.

Image and audio prices (``per_image``, ``per_audio_minute``) are not token-based and are not
included here; they need the request's image size or audio duration, which usage lacks.
"""

from __future__ import annotations

from pricing.table import ModelPrice
from pricing.usage import Usage

_TOKENS_PER_PRICE = 1_000_000


def compute_cost(usage: Usage, price: ModelPrice, *, requests: int = 1) -> int:
    """Exact cost in nanodollars of ``usage`` at ``price``, plus ``per_request * requests``.

    Cached tokens fall back to the input price when the model has no separate cache price,
    so a missing cache price never makes cached tokens free.
    """
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < 0:
        raise ValueError(f"requests must be a non-negative int (got {requests!r})")
    input_price = price.input or 0
    cache_read_price = price.cache_read if price.cache_read is not None else input_price
    cache_write_price = price.cache_write if price.cache_write is not None else input_price
    scaled = (
        usage.input_tokens * input_price
        + usage.output_tokens * (price.output or 0)
        + usage.cache_read_tokens * cache_read_price
        + usage.cache_write_tokens * cache_write_price
    )
    token_cost = -(-scaled // _TOKENS_PER_PRICE)  # ceiling division on exact integers
    return token_cost + (price.per_request or 0) * requests
