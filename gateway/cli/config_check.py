"""``tollgate config check [--config FILE]``, and the same checks before ``tollgate serve``.

A mistake in the config or the pricing file should stop the gateway at start, with one line
naming the file and the field, not surface as a customer's failed (or wrongly billed) request.
Each file is validated on its own as it is read (``gateway.settings``, ``pricing.parse``:
types, duplicate YAML keys, prices that are not plain or exponent-form decimals, settings that
contradict each other). What only the two files together can show is checked here:

* an alias (``aliases``) that points at a model with no price in the pricing file;
* a ``providers[i].models`` entry that can never route a model: every name it matches is
  routed to an earlier provider, because routing takes the first provider that matches. (An
  entry that matches no priced model *yet*, like ``o3*`` before o3 is priced, is not a
  mistake: such a request is refused as ``model_not_priced``, and the pricing file may catch
  up without a restart.)
* a pricing glob that can never price a model (``pricing.checks.shadowed_globs``);
* a token-priced model routed to an ``anthropic`` provider with no cache prices and no
  ``cache_at_input: true`` (``pricing.checks.missing_cache_prices``).

A provider without an API key is not a problem (the mock-only set-up has none): its models
are left out of ``GET /v1/models`` and refused with ``provider_not_configured``, and the
operator is warned once at start (``provider_warnings``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from gateway.prices.loading import load_pricing
from gateway.provider_settings import ProviderConfig
from gateway.settings import ConfigError, Settings, load_settings
from gateway.upstream.routing import provider_for
from pricing import PriceTable, PricingError
from pricing.checks import missing_cache_prices, shadowed_globs
from pricing.globs import covered, is_glob, may_overlap


def add_config_parser(sub: Any, default_config: str) -> None:
    """Add ``config check`` to ``tollgate``'s subcommands (``sub`` from ``add_subparsers``)."""
    config = sub.add_parser("config", help="check a gateway config and its pricing file")
    actions = config.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="report every problem, one line each")
    check.add_argument("--config", default=default_config, help="gateway YAML file")


def run_config(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """``tollgate config check``: 0 and a summary when clean; else 2, one line per problem on
    stderr. Warnings (a provider without a key) go to stderr and do not fail the check."""
    env = dict(os.environ if env is None else env)
    try:
        settings = load_settings(args.config, env)
    except ConfigError as exc:
        report(str(exc).splitlines())
        return 2
    table, problems = check_files(settings)
    if problems:
        report(problems)
        return 2
    report(f"warning: {line}" for line in provider_warnings(settings))
    assert table is not None
    print(f"{settings.source}: ok; {len(settings.providers)} provider(s), "
          f"{len(table.models)} priced model(s) in {table.source}")  # fmt: skip
    return 0


def report(lines: Iterable[str]) -> None:
    for line in lines:
        print(f"tollgate: {line}", file=sys.stderr)


def check_files(settings: Settings) -> tuple[PriceTable | None, list[str]]:
    """Load the pricing file that ``settings`` names and check the two together: the table
    (None if it cannot be read) and every problem, one line each."""
    try:
        table = load_pricing(settings.pricing_file)
    except PricingError as exc:
        return None, [str(exc)]
    return table, config_problems(settings, table)


def config_problems(settings: Settings, table: PriceTable) -> list[str]:
    """Every problem that needs both files to see (see the module docstring)."""
    return [
        *alias_problems(settings, table),
        *route_problems(settings),
        *shadowed_globs(table),
        *missing_cache_prices(table, lambda key: anthropic_billed(key, settings.providers)),
    ]


def alias_problems(settings: Settings, table: PriceTable) -> list[str]:
    """Aliases whose model has no price in the table (at any time: a scheduled price counts)."""
    return [
        f"{settings.source}: aliases.{alias}: points at {model!r}, which has no price in "
        f"{table.source}; every request by this name would be refused (model_not_priced)"
        for alias, model in settings.aliases.items()
        if not _priced(model, table)
    ]


def _priced(model: str, table: PriceTable) -> bool:
    return model in table.models or any(fnmatchcase(model, glob) for glob in table.globs())


def route_problems(settings: Settings) -> list[str]:
    """``providers[i].models`` entries that every earlier provider's entries cover together."""
    problems = []
    earlier: list[tuple[str, str]] = []  # (entry, provider name), in routing order
    for index, provider in enumerate(settings.providers):
        for position, entry in enumerate(provider.models):
            if covered(entry, [glob for glob, _ in earlier]):
                takers = [f"{glob!r} ({name})" for glob, name in earlier
                          if may_overlap(entry, glob)]  # fmt: skip
                problems.append(
                    f"{settings.source}: providers[{index}].models[{position}]: {entry!r} can "
                    f"never route a model to {provider.name!r}: every name it matches goes "
                    f"first to {', '.join(takers)}"
                )
        earlier += [(entry, provider.name) for entry in provider.models]
    return problems


def anthropic_billed(key: str, providers: Sequence[ProviderConfig]) -> str | None:
    """Whether models priced by table key ``key`` are routed to an ``anthropic`` provider,
    as a phrase naming it; a glob key counts when any name it matches is."""
    if not is_glob(key):
        provider = provider_for(key, providers)
        if provider is not None and provider.kind == "anthropic":
            return f"is routed to the Anthropic provider {provider.name!r}"
        return None
    earlier: list[str] = []
    for provider in providers:
        if provider.kind == "anthropic" and any(
            may_overlap(key, glob, unless=earlier) for glob in provider.models
        ):
            return f"prices models routed to the Anthropic provider {provider.name!r}"
        earlier += provider.models
    return None


def provider_warnings(settings: Settings) -> list[str]:
    """One line per provider without an API key: what is missing, and what that means."""
    return [
        f"{settings.source}: providers[{index}] ({provider.name}): no API key: {missing}; "
        f"its models ({', '.join(provider.models)}) are left out of GET /v1/models and "
        "refused with provider_not_configured"
        for index, provider in enumerate(settings.providers)
        if (missing := provider.missing_key()) is not None
    ]
