"""Which provider serves a model: the first provider whose globs match, in config order."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from gateway.provider_settings import ProviderConfig
from gateway.upstream.provider import Provider


def provider_for(model: str, providers: Sequence[ProviderConfig]) -> ProviderConfig | None:
    """The configured provider that serves ``model`` (the rule ``Router`` follows), or None."""
    return next((p for p in providers if any(fnmatchcase(model, g) for g in p.models)), None)


class Router:
    def __init__(self, routes: Sequence[tuple[tuple[str, ...], Provider]]) -> None:
        self._routes = list(routes)
        self._cache: dict[str, Provider | None] = {}

    def route(self, model: str) -> Provider | None:
        if model in self._cache:
            return self._cache[model]
        found = next(
            (p for globs, p in self._routes if any(fnmatchcase(model, g) for g in globs)), None
        )
        if len(self._cache) < 4096:  # model names come from clients: bound the cache
            self._cache[model] = found
        return found
