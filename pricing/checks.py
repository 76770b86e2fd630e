"""Pricing files that parse but would still bill wrongly: checks of the table as a whole (pure).

Each check returns its problems, one line each, phrased like the parser's errors
(``<source>: models.<key>: <problem>``). ``tollgate pricing check`` runs them on a file alone;
``tollgate config check`` and start-up run them with the gateway config, which says which
provider bills each model.

* ``shadowed_globs``: a glob key that ``PriceTable.lookup`` never reaches, because every name
  it matches is priced first by globs that lookup prefers (more literal characters, then
  longer). ``*gpt*`` next to ``gpt*`` is the usual slip: the first takes every model the
  second was written for. Only globs priced from the start count as taking a name (one whose
  prices are all scheduled for later leaves it to the others until then).
* ``missing_cache_prices``: a token-priced model billed by Anthropic with no ``cache_read`` or
  no ``cache_write`` price. Anthropic bills cache reads at a tenth of the input price and
  5-minute writes at 1.25 times it; a missing price falls back to the input price, which
  over-charges every cache hit or under-charges every write. ``cache_at_input: true`` on the
  model says that fallback is meant.
"""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatchcase

from pricing.globs import covered, is_glob, may_overlap
from pricing.instants import format_instant
from pricing.table import PriceTable

__all__ = ["claude_named", "missing_cache_prices", "shadowed_globs"]

# A pricing key -> why Anthropic bills it (a phrase for the message), or None if it does not.
AnthropicBilled = Callable[[str], str | None]
CLAUDE_GLOB = "claude-*"


def claude_named(key: str) -> str | None:
    """Anthropic's models by name, for a pricing file checked without a gateway config: a key
    named ``claude-*``, or a glob that can match such a name (``*`` prices them too)."""
    matches = may_overlap(key, CLAUDE_GLOB) if is_glob(key) else fnmatchcase(key, CLAUDE_GLOB)
    return f"is named {CLAUDE_GLOB} (an Anthropic model)" if matches else None


def shadowed_globs(table: PriceTable) -> list[str]:
    """Glob keys that can never price a model (see the module docstring)."""
    problems = []
    order = table.globs()
    for index, glob in enumerate(order):
        ahead = [g for g in order[:index] if table.models[g].effective_from is None]
        if covered(glob, ahead):
            takers = [g for g in ahead if may_overlap(glob, g)]
            problems.append(
                f"{table.source}: models.{glob}: can never price a model: every name it "
                f"matches is priced first by {', '.join(takers)} (lookup prefers the glob "
                "with more literal characters)"
            )
    return problems


def missing_cache_prices(table: PriceTable, anthropic: AnthropicBilled) -> list[str]:
    """Token-priced keys that ``anthropic`` says Anthropic bills, lacking a cache price and
    not marked ``cache_at_input: true``; every scheduled price is checked too."""
    problems = []
    for key in table.names():
        why = anthropic(key)
        if why is None:
            continue
        for price in table.schedule(key):
            if not price.is_token_priced or price.cache_at_input:
                continue
            missing = [f for f in ("cache_read", "cache_write") if getattr(price, f) is None]
            if not missing:
                continue
            start = price.effective_from
            when = "" if start is None else f" from {format_instant(start)}"
            problems.append(
                f"{table.source}: models.{key}{when}: {why} but has no {' or '.join(missing)} "
                "price; Anthropic bills cached tokens apart from input: set "
                f"{' and '.join(missing)}, or cache_at_input: true to bill them at the input price"
            )
    return problems
