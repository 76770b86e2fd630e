"""Reading a pricing file from disk; ``pricing`` itself only parses text (no I/O)."""

from __future__ import annotations

import os

from pricing import PriceTable, PricingError, parse_pricing


def load_pricing(path: str | os.PathLike[str]) -> PriceTable:
    """Read and parse a pricing file; errors name the file (``PricingError``)."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise PricingError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise PricingError(f"{source}: cannot read: not UTF-8 ({exc.reason})") from None
    return parse_pricing(text, source=source)
