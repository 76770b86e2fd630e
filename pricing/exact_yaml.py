"""A YAML loader that never turns a price into a binary float.

``yaml.safe_load("input: 0.1")`` yields the float 0.1000000000000000055…, and once that has
happened the exact price is gone. ``ExactLoader`` builds ``Decimal`` from the scalar's own text
instead, and only reads plain decimal integers as ints: YAML 1.1's octal (``010`` is 8), hex,
binary and base-60 (``1:30``) forms stay strings, so a price written that way is refused by
validation rather than silently misread. A timestamp that is not a real date (``2026-13-01``)
also stays text, so validation can name its field instead of the loader failing on the file.
The subclass has its own constructor table; the global ``yaml.SafeLoader`` is left untouched.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import yaml

_FLOAT_TAG = "tag:yaml.org,2002:float"
_INT_TAG = "tag:yaml.org,2002:int"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)", re.ASCII)
_NON_FINITE = {".inf": "Infinity", ".nan": "NaN"}


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | str:
    """``!!float`` as an exact Decimal; ``.inf``/``.nan`` become non-finite Decimals so that
    validation can reject them with the field's path; anything else stays text."""
    text = loader.construct_scalar(node)
    cleaned = text.replace("_", "").lower()
    unsigned = cleaned.lstrip("+-")
    if unsigned in _NON_FINITE:
        return Decimal(cleaned[: len(cleaned) - len(unsigned)] + _NON_FINITE[unsigned])
    if ":" in cleaned:
        return text
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return text


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    """``!!int`` only in plain decimal form; the ambiguous YAML 1.1 forms stay text."""
    text = loader.construct_scalar(node)
    if _PLAIN_INT.fullmatch(text):
        return int(text.replace("_", ""))
    return text


def _construct_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    """``!!timestamp`` as SafeLoader reads it (a date or datetime), or the text if invalid."""
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


class ExactLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with exact numbers; use as ``yaml.load(text, Loader=ExactLoader)``."""

    yaml_constructors = {
        **yaml.SafeLoader.yaml_constructors,
        _FLOAT_TAG: _construct_decimal,
        _INT_TAG: _construct_int,
        _TIMESTAMP_TAG: _construct_timestamp,
    }
