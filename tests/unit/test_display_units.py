"""Display units (issue 18): a wallet in credits beside USD, exact to the nanodollar."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.billing.display_units import format_credits, wallet_display, with_display
from pricing import format_usd, parse_usd

WALLET = {"balance": "10.0123", "cash": "10.00", "credits": "0.0123", "free_quota": "0.00",
          "held": "0.0000042", "month_spend": "-0.50", "credit_grants": []}  # fmt: skip


def test_credits_are_exact_decimals() -> None:
    assert format_credits(parse_usd("0.0123"), 100) == "1.23"
    assert format_credits(parse_usd("10.00"), 100) == "1000.00"
    assert format_credits(parse_usd("0.0000042"), 100) == "0.00042"
    assert format_credits(1, 1) == "0.000000001"  # a nanodollar at one credit to the dollar
    assert format_credits(1, 1000) == "0.000001"
    assert format_credits(parse_usd("-2.50"), 3) == "-7.50"
    assert format_credits(parse_usd("0.333333333"), 3) == "0.999999999"  # no rounding


@pytest.mark.parametrize("per_usd", [0, -1, True])
def test_credits_per_usd_is_a_positive_integer(per_usd: int) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        format_credits(10, per_usd)


@given(st.integers(-(2**53), 2**53), st.integers(1, 10**6))
def test_credits_times_the_rate_give_back_the_dollars(units: int, per_usd: int) -> None:
    shown = format_credits(units, per_usd)
    assert parse_usd(shown) == units * per_usd  # exact: the same integer, nothing dropped
    assert shown == format_usd(units * per_usd)


def test_the_wallet_shows_every_total_in_credits() -> None:
    assert wallet_display(WALLET, 100) == {
        "unit": "credits", "per_usd": 100, "balance": "1001.23", "cash": "1000.00",
        "credits": "1.23", "free_quota": "0.00", "held": "0.00042", "month_spend": "-50.00",
    }  # fmt: skip
    shown = with_display(dict(WALLET), 100)
    assert {k: v for k, v in shown.items() if k != "display"} == WALLET  # USD fields untouched


def test_an_account_in_usd_has_no_display() -> None:
    assert wallet_display(WALLET, None) is None
    assert with_display(dict(WALLET), None) == WALLET
