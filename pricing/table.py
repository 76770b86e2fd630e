"""A price table: every model's prices, found by exact name or glob, as in force at an instant.

Files are parsed and validated into tables by ``pricing.parse``; the price types themselves
(``ModelPrice``, ``PriceTier``) live in ``pricing.prices``.
"""

from __future__ import annotations

import bisect
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from pricing.globs import is_glob
from pricing.instants import as_utc
from pricing.prices import ModelPrice

__all__ = ["PriceTable"]


@dataclass(frozen=True)
class PriceTable:
    """All model prices of one pricing file; ``version`` identifies it in usage records.

    ``models`` maps each key (a name or a glob) to its first price: the base price, or, for a
    model whose every price is scheduled, the earliest. ``scheduled`` maps a key to its later
    prices, each with an ``effective_from``, in time order. ``lookup`` picks the one in force.
    """

    models: Mapping[str, ModelPrice]
    version: str
    source: str
    scheduled: Mapping[str, tuple[ModelPrice, ...]] = field(default_factory=dict)
    # Glob keys, best match first, so lookup is a single scan.
    _globs: tuple[str, ...] = field(init=False, repr=False, compare=False)
    # Every instant at which some price starts, sorted, for next_change.
    _changes: tuple[datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Copy into read-only views: a table is shared by all requests and must not change
        # under them, and _globs and _changes must stay in step with the prices.
        models = MappingProxyType(dict(self.models))
        object.__setattr__(self, "models", models)
        scheduled = {key: tuple(later) for key, later in self.scheduled.items() if later}
        object.__setattr__(self, "scheduled", MappingProxyType(scheduled))
        globs = [name for name in models if is_glob(name)]
        globs.sort(key=lambda pattern: (-_literal_length(pattern), -len(pattern), pattern))
        object.__setattr__(self, "_globs", tuple(globs))
        starts = {
            as_utc(price.effective_from)
            for key in models
            for price in self.schedule(key)
            if price.effective_from is not None
        }
        object.__setattr__(self, "_changes", tuple(sorted(starts)))

    def lookup(self, model: str, at: datetime | None = None) -> ModelPrice | None:
        """Price for ``model`` in force at ``at`` (default: now; a naive ``at`` is UTC).

        The key is the exact name, else the most specific matching glob, else None. "Most
        specific" is the pattern with the most literal characters, so ``gpt-4o-mini*`` beats
        ``gpt-4o*``, which beats ``gpt-*``. Matching is case-sensitive. Of a key's prices, the
        one with the latest ``effective_from`` at or before ``at`` is in force (the base price
        counts as the earliest). A key with no price in force yet is passed over as if it were
        not in the file, so a model scheduled to start later falls back to a glob until then.
        """
        # Tables without scheduled prices (most) need no clock at all.
        instant = None if not self._changes else datetime.now(UTC) if at is None else as_utc(at)
        if model in self.models:
            exact = self._in_force(model, instant)
            if exact is not None:
                return exact
        for pattern in self._globs:
            if fnmatch.fnmatchcase(model, pattern):
                price = self._in_force(pattern, instant)
                if price is not None:
                    return price
        return None

    def next_change(self, after: datetime) -> datetime | None:
        """The earliest ``effective_from`` strictly after ``after``, of any model, or None.

        Lets the gateway know when prices change next (a naive ``after`` is UTC).
        """
        index = bisect.bisect_right(self._changes, as_utc(after))
        return self._changes[index] if index < len(self._changes) else None

    def schedule(self, key: str) -> tuple[ModelPrice, ...]:
        """Every price of table key ``key`` in time order (the base first); () if none."""
        first = self.models.get(key)
        if first is None:
            return ()
        return (first, *self.scheduled.get(key, ()))

    def names(self) -> list[str]:
        return sorted(self.models)

    def globs(self) -> tuple[str, ...]:
        """The glob keys in the order ``lookup`` tries them (after the exact names)."""
        return self._globs

    def _in_force(self, key: str, instant: datetime | None) -> ModelPrice | None:
        first = self.models[key]
        if instant is None or (first.effective_from is None and key not in self.scheduled):
            return first  # the common case: one price, always in force
        chosen = None
        for price in self.schedule(key):
            if price.effective_from is not None and as_utc(price.effective_from) > instant:
                break
            chosen = price
        return chosen


def _literal_length(pattern: str) -> int:
    return len(pattern) - pattern.count("*") - pattern.count("?")
