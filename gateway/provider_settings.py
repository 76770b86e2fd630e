"""The ``providers:`` of the gateway config: where each model family is forwarded (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

PROVIDER_KINDS = ("openai", "anthropic", "mock")
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
}
_PROVIDER_FIELDS = {"name", "kind", "base_url", "api_key", "api_key_env", "models"}


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    kind: str
    base_url: str
    models: tuple[str, ...]
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None  # the variable the key was to come from (named in errors)

    def missing_key(self) -> str | None:
        """What this provider lacks to authenticate upstream, as a phrase naming the setting;
        None when nothing is missing (a key is set, or the built-in mock needs none)."""
        if self.kind == "mock" or self.api_key:
            return None
        if self.api_key_env:
            return f"the environment variable {self.api_key_env} (api_key_env) is not set"
        return "it has neither api_key nor api_key_env"


Fail = Callable[[str, str], ValueError]


def parse_provider(
    item: object, where: str, fail: Fail, env: Mapping[str, str]
) -> ProviderConfig:
    if not isinstance(item, dict):
        raise fail(where, "must be a mapping with name, kind and models")
    for key in item:
        if key not in _PROVIDER_FIELDS:
            raise fail(
                f"{where}.{key}",
                f"unknown field; expected one of {', '.join(sorted(_PROVIDER_FIELDS))}",
            )
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise fail(f"{where}.name", "must be a non-empty string")
    kind = item.get("kind")
    if kind not in PROVIDER_KINDS:
        raise fail(f"{where}.kind", f"must be one of {', '.join(PROVIDER_KINDS)}, got {kind!r}")
    base_url = item.get("base_url", DEFAULT_BASE_URLS.get(str(kind), ""))
    if not isinstance(base_url, str) or (kind != "mock" and not http_url(base_url)):
        raise fail(f"{where}.base_url", "must be an http:// or https:// URL with a host")
    models = item.get("models")
    if (
        not isinstance(models, list)
        or not models
        or not all(isinstance(m, str) and m for m in models)
    ):
        raise fail(f"{where}.models", "must be a non-empty list of model names or globs")
    api_key = item.get("api_key")
    if api_key is not None and not isinstance(api_key, str):
        raise fail(f"{where}.api_key", "must be a string")
    key_env = item.get("api_key_env")
    if key_env is not None:
        if not isinstance(key_env, str) or not key_env:
            raise fail(f"{where}.api_key_env", "must be the name of an environment variable")
        api_key = env.get(key_env) or api_key
    return ProviderConfig(
        name=name,
        kind=str(kind),
        base_url=base_url.rstrip("/"),
        models=tuple(models),
        api_key=api_key,
        api_key_env=key_env,
    )


def http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
