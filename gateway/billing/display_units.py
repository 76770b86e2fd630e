"""An account's display unit: its wallet counted in credits as well as in USD (pure).

An account with ``credits_per_usd`` N counts N credits to the dollar. An amount of a
nanodollars is a·N / 10^9 credits: an integer over a power of ten, so its decimal string is
exact and nothing is rounded (a sub-nanodollar price does not exist inside Tollgate). The digits
are the ones ``format_usd`` writes for a·N nanodollars: at least two decimal places, at most
nine (``$0.0123`` at 100 to the dollar is ``"1.23"``, ``$10`` is ``"1000.00"``). The wallet's
USD fields stay as they are; the credits sit beside them in ``display``, which an account that
counts in USD only does not have (its wallet keeps the contract's shape, key for key).
"""

from __future__ import annotations

from collections.abc import Mapping

from pricing import format_usd, parse_usd

UNIT = "credits"
# The wallet's totals (USD strings in its JSON), each shown in credits too.
WALLET_AMOUNTS = ("balance", "cash", "credits", "free_quota", "held", "month_spend")


def format_credits(nanodollars: int, per_usd: int) -> str:
    """``nanodollars`` in credits of which ``per_usd`` make a dollar, as an exact decimal."""
    if isinstance(per_usd, bool) or not isinstance(per_usd, int) or per_usd <= 0:
        raise ValueError(f"credits per USD must be a positive integer, not {per_usd!r}")
    return format_usd(nanodollars * per_usd)


def wallet_display(wallet: Mapping[str, object], per_usd: int | None) -> dict[str, object] | None:
    """The wallet JSON's totals in credits, ``{"unit", "per_usd", "balance", ...}``; None for
    an account that counts in USD only (no ``credits_per_usd``)."""
    if per_usd is None:
        return None
    shown: dict[str, object] = {"unit": UNIT, "per_usd": per_usd}
    for name in WALLET_AMOUNTS:
        shown[name] = format_credits(parse_usd(wallet[name], field=name), per_usd)
    return shown


def with_display(wallet: dict[str, object], per_usd: int | None) -> dict[str, object]:
    """The wallet JSON (``WalletView.to_json()``) with its ``display``; as it is for an account
    that counts in USD only."""
    shown = wallet_display(wallet, per_usd)
    return wallet if shown is None else {**wallet, "display": shown}
