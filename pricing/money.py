"""Money at the edges: exact USD decimal strings in, exact integer units out.

Inside Tollgate money is an integer count of nanodollars (``UNITS_PER_USD`` per dollar), so
sums, holds and refunds are exact and Redis can store them with ``INCRBY``. A nanodollar is far
below the smallest real price (a fraction of a cent per million tokens still fits), so nothing a
provider bills is lost to rounding. Floats never appear: ``0.1`` has no exact binary form, and a
wallet that drifts by one unit breaks the ledger identity in the contract.

``parse_usd`` and ``format_usd`` are the only two conversions; everything else passes integers.
"""

from __future__ import annotations

import re
from decimal import Decimal

UNITS_PER_USD = 10**9
_DECIMAL_PLACES = 9
# Generous ceiling that no real amount reaches; it exists so a hostile "1E+999999999" can't make
# us build a billion-digit integer.
_MAX_INTEGER_DIGITS = 18

_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)


def decimal_to_units(value: Decimal) -> int:
    """Convert a Decimal amount of USD to exact integer units.

    Raises ValueError whose message is a bare problem phrase (``"has more than 9 decimal
    places"``) so each caller can prefix its own field path. Trailing zeros beyond the ninth
    place are fine because the value is still exact.
    """
    if not value.is_finite():
        raise ValueError("is not a finite number")
    if value.is_zero():
        return 0
    if value.adjusted() >= _MAX_INTEGER_DIGITS:
        raise ValueError(f"is too large (at most {_MAX_INTEGER_DIGITS} integer digits)")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite, so never 'n', 'N' or 'F'
    # Strip trailing zeros before any big-integer work: "1.000…0" with a million zeros is exact.
    coefficient_text = "".join(map(str, digits))
    significant = coefficient_text.rstrip("0")
    exponent += len(coefficient_text) - len(significant)
    if exponent < -_DECIMAL_PLACES:
        raise ValueError(f"has more than {_DECIMAL_PLACES} decimal places")
    coefficient = int(significant)  # at most 27 digits after the two checks above
    scale: int = 10 ** (exponent + _DECIMAL_PLACES)  # exponent >= -9, so an int, not a float
    units = coefficient * scale
    return -units if sign else units


def parse_usd(value: object, *, field: str = "amount") -> int:
    """Parse a USD amount from JSON or config into exact integer units.

    Accepts a plain decimal string (``"10.00"``, ``"-0.5"``, ``"5"``), an ``int`` or a finite
    ``Decimal``. Strings must be plain decimals: no exponent, sign other than ``-``, whitespace,
    ``NaN`` or ``inf``, because an amount that a human could misread should be refused, not
    guessed. Floats and bools are refused outright. Negative amounts are returned as such;
    callers decide whether a sign is allowed. Errors are ``ValueError`` naming ``field``.
    """
    if isinstance(value, bool):
        raise ValueError(f'{field} must be a decimal string like "10.00", not a boolean')
    if isinstance(value, float):
        raise ValueError(f'{field} must be a decimal string like "10.00", not a float')
    if isinstance(value, int):
        value = Decimal(value)  # exact, and subject to the same size limit as text
    elif isinstance(value, str):
        if not _PLAIN_DECIMAL.fullmatch(value):
            raise ValueError(f'{field} must be a decimal string like "10.00"')
        value = Decimal(value)
    if not isinstance(value, Decimal):
        raise ValueError(
            f'{field} must be a decimal string like "10.00", not {type(value).__name__}'
        )
    try:
        return decimal_to_units(value)
    except ValueError as exc:
        raise ValueError(f"{field} {exc}") from None


def format_usd(units: int) -> str:
    """Render integer units as an exact USD decimal string for JSON and headers.

    At least two decimal places (it reads as money), at most nine (one unit), trailing zeros
    beyond the second dropped: ``4200 -> "0.0000042"``, ``10**10 -> "10.00"``.
    """
    if isinstance(units, bool) or not isinstance(units, int):
        raise TypeError(f"units must be an int, not {type(units).__name__}")
    whole, fraction = divmod(abs(units), UNITS_PER_USD)
    digits = f"{fraction:0{_DECIMAL_PLACES}d}".rstrip("0").ljust(2, "0")
    sign = "-" if units < 0 else ""
    return f"{sign}{whole}.{digits}"
