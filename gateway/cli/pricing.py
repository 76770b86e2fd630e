"""``tollgate pricing check FILE`` and ``tollgate pricing import-litellm FILE [-o OUT]``.

Prices are edited by hand, and a typo bills every customer wrongly until someone notices.
``check`` reads the file exactly as the gateway will (same parser, same one-line errors) and
prints every price back from the integers the gateway bills with, scheduled prices included, so
what the operator reads is what customers pay. It also refuses what parses but bills wrongly
(``pricing.checks``): a glob that can never price a model, and a model named ``claude-*`` (a
file checked alone cannot know the routes; ``tollgate config check`` uses the config's) with no
cache prices and no ``cache_at_input: true``. ``import-litellm`` writes a pricing file from
LiteLLM's price map (see ``pricing.litellm``) and checks that the gateway would load it. Neither
needs Redis or a gateway config.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway.prices.loading import load_pricing
from pricing import ModelPrice, PriceTable, PricingError, format_usd, parse_pricing
from pricing.checks import claude_named, missing_cache_prices, shadowed_globs
from pricing.instants import format_instant
from pricing.litellm import convert_litellm
from pricing.prices import PriceTier

_TOKEN_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")


def add_pricing_parser(sub: Any) -> None:
    """Add ``pricing`` to ``tollgate``'s subcommands (``sub`` from ``add_subparsers``)."""
    _configure(sub.add_parser("pricing", help="check a pricing file, import LiteLLM's prices"))


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
    if args.action == "import-litellm":
        return import_litellm(args.file, args.output)
    try:
        table = load_pricing(args.file)
    except PricingError as exc:
        print(f"tollgate: {exc}", file=sys.stderr)
        return 2
    problems = [*shadowed_globs(table), *missing_cache_prices(table, claude_named)]
    for problem in problems:
        print(f"tollgate: {problem}", file=sys.stderr)
    if problems:
        return 2
    for line in describe(table):
        print(line)
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="validate a pricing file and print its prices")
    check.add_argument("file", help="pricing YAML file")
    litellm = actions.add_parser(
        "import-litellm",
        help="convert LiteLLM's model_prices_and_context_window.json to a pricing file",
    )
    litellm.add_argument("file", help="LiteLLM's model_prices_and_context_window.json")
    litellm.add_argument("-o", "--output", help="pricing YAML to write (default: stdout)")


def import_litellm(source: str, output: str | None) -> int:
    """Convert LiteLLM's price map at ``source`` to pricing YAML on ``output`` (or stdout).

    The YAML is parsed as the gateway would before anything is written, so a file this
    writes always loads. A summary goes to stderr. 0 on success, 2 on a bad input or output.
    """
    try:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
        converted = convert_litellm(text, source=source)
        parse_pricing(converted.text, source=output or "<stdout>")
    except OSError as exc:
        print(f"tollgate: {source}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(f"tollgate: {source}: cannot read: not UTF-8 ({exc.reason})", file=sys.stderr)
        return 2
    except PricingError as exc:
        print(f"tollgate: {exc}", file=sys.stderr)
        return 2
    if output is None:
        sys.stdout.write(converted.text)
    else:
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(converted.text)
        except OSError as exc:
            print(f"tollgate: {output}: cannot write: {exc.strerror or exc}", file=sys.stderr)
            return 2
    print(
        f"tollgate: {source}: {converted.converted} model(s) converted, "
        f"{converted.skipped_total} skipped (reasons in the file's header)"
        + (f"; wrote {output}" if output else ""),
        file=sys.stderr,
    )
    return 0


def describe(table: PriceTable) -> list[str]:
    """The table as text: a heading with the version, then one line per price, by name.

    A model with scheduled prices gets one line per price, in time order, each scheduled one
    marked ``from <instant>``.
    """
    heading = f"{table.source}: version {table.version}, {len(table.models)} model(s)"
    starts = sum(
        price.effective_from is not None for name in table.names() for price in table.schedule(name)
    )
    if starts:
        heading += f", {starts} scheduled price(s)"
    lines = [f"{heading}, prices in USD"]
    lines += [describe_model(price) for name in table.names() for price in table.schedule(name)]
    return lines


def describe_model(price: ModelPrice) -> str:
    """One line: ``name: per 1M tokens: input 3.00, output 15.00; above 200000 ...; ...``.

    A scheduled price reads ``name from 2026-12-01T00:00:00Z: ...``. Only prices the file sets
    are shown (no fallbacks), each as the exact decimal it was.
    """
    parts = []
    tokens = _token_prices(price)
    if tokens:
        parts.append(f"per 1M tokens: {tokens}")
    if price.cache_at_input:
        parts.append("cached tokens at the input price")
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
    if price.hold_output_tokens is not None:
        parts.append(f"hold_output_tokens: {price.hold_output_tokens}")
    when = "" if price.effective_from is None else f" from {format_instant(price.effective_from)}"
    return f"{price.model}{when}: {'; '.join(parts)}"


def _describe_tier(tier: PriceTier) -> str:
    return f"above {tier.above} prompt tokens, per 1M tokens: {_token_prices(tier)}"


def _token_prices(price: ModelPrice | PriceTier) -> str:
    pairs = []
    for name in _TOKEN_FIELDS:
        value = getattr(price, name)
        if value is not None:
            pairs.append(f"{name} {format_usd(value)}")
    return ", ".join(pairs)
