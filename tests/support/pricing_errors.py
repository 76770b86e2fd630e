"""The one-line message a price file is refused with."""

from __future__ import annotations

import pytest

from pricing import PricingError, parse_pricing


def pricing_error(text: str) -> str:
    """Parse ``text`` expecting a refusal; return its message, checked to be one line."""
    with pytest.raises(PricingError) as caught:
        parse_pricing(text, source="p.yaml")
    message = str(caught.value)
    assert "\n" not in message
    return message
