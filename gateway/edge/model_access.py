"""Which models a key may use: its allow-list, and the ``GET /v1/models`` listing (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from gateway import errors
from gateway.settings import ProviderConfig
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


def model_list(
    table: PriceTable, providers: Sequence[ProviderConfig], allow: Sequence[str] | None
) -> dict[str, object]:
    """OpenAI's model list: every priced model (exact names; globs are not models) that some
    provider serves and that the key may use. ``owned_by`` is the provider that serves it."""
    data = []
    for name in table.names():
        if "*" in name or "?" in name or not is_allowed(name, allow):
            continue
        provider = next((p for p in providers if any(fnmatchcase(name, g) for g in p.models)), None)
        if provider is not None:
            data.append({"id": name, "object": "model", "created": 0, "owned_by": provider.name})
    return {"object": "list", "data": data}
