"""Which models a key may use and the gateway can serve: the key's allow-list, the providers
that have no API key, and the ``GET /v1/models`` listing (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

from gateway import errors
from gateway.provider_settings import ProviderConfig
from gateway.upstream.routing import provider_for
from pricing import PriceTable


def is_allowed(model: str, allow: Sequence[str] | None) -> bool:
    """Whether ``model`` matches the allow-list (globs); None allows every model."""
    return allow is None or any(fnmatchcase(model, pattern) for pattern in allow)


def check_allowed(model: str, allow: Sequence[str] | None) -> None:
    """Raise 403 ``model_not_allowed`` unless the key may use ``model`` (the real one, after
    its alias is resolved)."""
    if not is_allowed(model, allow):
        raise errors.ModelNotAllowed(
            f"This API key may not use the model {model!r}.", param="model"
        )


def unconfigured_providers(providers: Sequence[ProviderConfig]) -> dict[str, str]:
    """Provider name -> what it lacks (``ProviderConfig.missing_key``), for those lacking it."""
    return {p.name: missing for p in providers if (missing := p.missing_key()) is not None}


def check_configured(model: str, provider: str, unconfigured: Mapping[str, str]) -> None:
    """Raise 400 ``provider_not_configured`` when ``provider`` (serving ``model``) is one of
    ``unconfigured`` (from :func:`unconfigured_providers`)."""
    missing = unconfigured.get(provider)
    if missing is not None:
        raise errors.ProviderNotConfigured(
            f"The model {model!r} is served by the provider {provider!r}, which has no API key "
            f"on this gateway: {missing}. Nothing was charged.",
            param="model",
        )


def model_list(
    table: PriceTable, providers: Sequence[ProviderConfig], allow: Sequence[str] | None
) -> dict[str, object]:
    """OpenAI's model list: every priced model (exact names; globs are not models) that some
    provider with a key serves and that the key may use. ``owned_by`` is that provider."""
    data = []
    for name in table.names():
        if "*" in name or "?" in name or not is_allowed(name, allow):
            continue
        provider = provider_for(name, providers)
        if provider is not None and provider.missing_key() is None:
            data.append({"id": name, "object": "model", "created": 0, "owned_by": provider.name})
    return {"object": "list", "data": data}
