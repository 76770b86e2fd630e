"""``tollgate pricing check FILE``: validate a pricing file and show what it will bill.

Prices are edited by hand, and a typo bills every customer wrongly until someone notices. This
command reads the file exactly as the gateway will (same parser, same one-line errors) and
prints every price back from the integers the gateway bills with, so what the operator reads
is what customers pay. It needs no Redis and no gateway config.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pricing import ModelPrice, PriceTable, PricingError, format_usd, load_pricing
from pricing.prices import PriceTier

_TOKEN_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")


def add_pricing_parser(sub: Any) -> None:
    """Add ``pricing`` to ``tollgate``'s subcommands (``sub`` from ``add_subparsers``)."""
    _configure(sub.add_parser("pricing", help="check a pricing file"))


def pricing_command(argv: list[str]) -> int:
    """Run ``tollgate pricing ARGV...`` (e.g. ``["check", "pricing.yaml"]``); the exit code."""
    parser = argparse.ArgumentParser(prog="tollgate pricing")
    _configure(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on bad arguments
        return exc.code if isinstance(exc.code, int) else 2
    return run_pricing(args)


def run_pricing(args: argparse.Namespace) -> int:
    """Run a parsed ``pricing`` subcommand: 0 when the file is good, 2 when it is not."""
    try:
        table = load_pricing(args.file)
    except PricingError as exc:
        print(f"tollgate: {exc}", file=sys.stderr)
        return 2
    for line in describe(table):
        print(line)
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="validate a pricing file and print its prices")
    check.add_argument("file", help="pricing YAML file")


def describe(table: PriceTable) -> list[str]:
    """The table as text: a heading with the version, then one line per model, by name."""
    count = len(table.models)
    lines = [f"{table.source}: version {table.version}, {count} model(s), prices in USD"]
    lines += [describe_model(table.models[name]) for name in table.names()]
    return lines


def describe_model(price: ModelPrice) -> str:
    """One line: ``name: per 1M tokens: input 3.00, output 15.00; above 200000 ...; ...``.

    Only prices the file sets are shown (no fallbacks), each as the exact decimal it was.
    """
    parts = []
    tokens = _token_prices(price)
    if tokens:
        parts.append(f"per 1M tokens: {tokens}")
    parts += [_describe_tier(tier) for tier in price.tiers]
    if price.per_image is not None:
        images = ", ".join(f"{size} {format_usd(usd)}" for size, usd in price.per_image.items())
        parts.append(f"per image: {images}")
    if price.per_audio_minute is not None:
        parts.append(f"per audio minute: {format_usd(price.per_audio_minute)}")
    if price.per_request is not None:
        parts.append(f"per request: {format_usd(price.per_request)}")
    if price.max_output_tokens is not None:
        parts.append(f"max_output_tokens: {price.max_output_tokens}")
    return f"{price.model}: {'; '.join(parts)}"


def _describe_tier(tier: PriceTier) -> str:
    return f"above {tier.above} prompt tokens, per 1M tokens: {_token_prices(tier)}"


def _token_prices(price: ModelPrice | PriceTier) -> str:
    pairs = []
    for name in _TOKEN_FIELDS:
        value = getattr(price, name)
        if value is not None:
            pairs.append(f"{name} {format_usd(value)}")
    return ", ".join(pairs)
