"""Exact prices and costs for Tollgate: parse a pricing file, price a request's usage.

Pure: no I/O (``gateway.prices.loading`` reads the file). Money is integer nanodollars
(``UNITS_PER_USD`` per dollar); ``parse_usd``/``format_usd`` convert at the edges. A price may
be scheduled (``effective_from``): ``PriceTable.lookup(model, at)`` picks the one in force.
``pricing.litellm`` converts LiteLLM's price map into a pricing file.
"""

from __future__ import annotations

from pricing.cost import compute_cost
from pricing.money import UNITS_PER_USD, format_usd, parse_usd
from pricing.parse import PricingError, parse_pricing
from pricing.prices import ModelPrice, PriceNotFound, PriceTier
from pricing.table import PriceTable
from pricing.usage import Usage

__all__ = [
    "UNITS_PER_USD",
    "ModelPrice",
    "PriceNotFound",
    "PriceTable",
    "PriceTier",
    "PricingError",
    "Usage",
    "compute_cost",
    "format_usd",
    "parse_pricing",
    "parse_usd",
]
