"""parse_usd / format_usd: the only two conversions between USD text and integer units."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from pricing import UNITS_PER_USD, format_usd, parse_usd


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (10_000_000_000, "10.00"),
        (4200, "0.0000042"),
        (1, "0.000000001"),
        (0, "0.00"),
        (-1_500_000_000, "-1.50"),
        (123_456_789, "0.123456789"),
        (-1, "-0.000000001"),
        (1_230_000_000, "1.23"),
        (1_234_000_000, "1.234"),
        (10**9 * 10**15, "1000000000000000.00"),
    ],
)
def test_format_examples_and_parse_back(units: int, text: str) -> None:
    assert format_usd(units) == text
    assert parse_usd(text) == units


@pytest.mark.parametrize(
    ("value", "units"),
    [
        ("10.00", 10 * UNITS_PER_USD),
        ("0.0000042", 4200),
        ("5", 5 * UNITS_PER_USD),
        ("-0.5", -500_000_000),
        ("-0", 0),
        ("007.50", 7_500_000_000),
        ("1.0000000000", UNITS_PER_USD),  # trailing zeros past 9 places are still exact
        (7, 7 * UNITS_PER_USD),
        (-3, -3 * UNITS_PER_USD),
        (Decimal("0.075"), 75_000_000),
        (Decimal("1E+3"), 1000 * UNITS_PER_USD),
        (Decimal("-2.5"), -2_500_000_000),
    ],
)
def test_parse_accepts(value: object, units: int) -> None:
    assert parse_usd(value) == units


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.1, 'amount must be a decimal string like "10.00", not a float'),
        (True, 'amount must be a decimal string like "10.00", not a boolean'),
        (None, 'amount must be a decimal string like "10.00", not NoneType'),
        (["1"], 'amount must be a decimal string like "10.00", not list'),
        ("1e3", 'amount must be a decimal string like "10.00"'),
        ("1E-3", 'amount must be a decimal string like "10.00"'),
        ("abc", 'amount must be a decimal string like "10.00"'),
        ("", 'amount must be a decimal string like "10.00"'),
        (" 1", 'amount must be a decimal string like "10.00"'),
        ("1 ", 'amount must be a decimal string like "10.00"'),
        ("1\n", 'amount must be a decimal string like "10.00"'),
        ("1 000", 'amount must be a decimal string like "10.00"'),
        ("1_000", 'amount must be a decimal string like "10.00"'),
        ("+1", 'amount must be a decimal string like "10.00"'),
        (".5", 'amount must be a decimal string like "10.00"'),
        ("5.", 'amount must be a decimal string like "10.00"'),
        ("\u0661", 'amount must be a decimal string like "10.00"'),  # Arabic-Indic digit one
        ("NaN", 'amount must be a decimal string like "10.00"'),
        ("inf", 'amount must be a decimal string like "10.00"'),
        ("1.0000000001", "amount has more than 9 decimal places"),
        (Decimal("NaN"), "amount is not a finite number"),
        (Decimal("-Infinity"), "amount is not a finite number"),
        (Decimal("1E-10"), "amount has more than 9 decimal places"),
        ("1" + "0" * 18, "amount is too large (at most 18 integer digits)"),
        (Decimal("1E+999999999"), "amount is too large (at most 18 integer digits)"),
    ],
)
def test_parse_rejects_with_clear_message(value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_usd(value)
    assert str(caught.value) == message


def test_parse_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"^monthly_limit has more than 9 decimal places$"):
        parse_usd("0.0000000001", field="monthly_limit")


def test_huge_exponent_with_trailing_zeros_is_cheap_and_exact() -> None:
    # A million trailing zeros must not be turned into a million-digit integer.
    assert parse_usd(Decimal("1." + "0" * 1_000_000)) == UNITS_PER_USD
    with pytest.raises(ValueError, match="more than 9 decimal places"):
        parse_usd(Decimal("1E-999999999"))


def test_format_rejects_non_int() -> None:
    with pytest.raises(TypeError):
        format_usd(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_usd(True)


def test_round_trip_random_units() -> None:
    rng = random.Random(20240601)
    for _ in range(2000):
        units = rng.randrange(-(10**20), 10**20)
        text = format_usd(units)
        assert parse_usd(text) == units
        assert Decimal(text) * UNITS_PER_USD == units
        fraction = text.partition(".")[2]
        assert 2 <= len(fraction) <= 9
        assert len(fraction) == 2 or not fraction.endswith("0")
